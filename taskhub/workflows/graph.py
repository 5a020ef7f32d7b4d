"""A compiled workflow: its steps and the dependencies between them, checked before any write.

Both ways of defining a workflow — the Python builder and the stored ``initialTask`` /
``transitions`` shape — produce a :class:`Graph`; starting a run turns a graph into rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..definitions.registry import all_definitions
from ..errors import InvalidTaskRequest

#: When a blocked step may run, decided once every dependency has ended.
TRIGGER_RULES = ("all_success", "all_done", "any_failed")
STEP_KEY = re.compile(r"^[A-Za-z0-9_.:\-\[\]/]{1,200}$")


class InvalidWorkflow(InvalidTaskRequest):
    """A workflow definition or start request was refused; nothing was written."""


@dataclass(kw_only=True)
class Step:
    """One step: a task to run, what it waits for, and how it is undone."""

    key: str
    task: str
    payload: dict[str, Any] = field(default_factory=dict)
    after: list[str] = field(default_factory=list)
    trigger: str = "all_success"
    #: run only if every upstream result matches these key/values (a branch on a result)
    when: dict[str, Any] | None = None
    allow_failure: bool = False
    compensation: str | None = None
    #: the compensation's own payload; ``None``: it gets the forward step's payload
    compensation_payload: dict[str, Any] | None = None
    compensate_failed: bool = False
    priority: str | int | None = None
    max_attempts: int | None = None
    timeout: float | None = None


@dataclass
class Graph:
    """Steps in insertion order; ``after`` names the keys a step depends on."""

    name: str
    version: int = 1
    steps: dict[str, Step] = field(default_factory=dict)

    def add(self, step: Step) -> Step:
        if not isinstance(step.key, str) or not STEP_KEY.match(step.key):
            raise InvalidWorkflow(
                f"step key {step.key!r} must be 1-200 letters, digits or _.:-[]/", field="steps"
            )
        if step.key in self.steps:
            raise InvalidWorkflow(f"step {step.key!r} is defined twice", field="steps")
        if step.trigger not in TRIGGER_RULES:
            raise InvalidWorkflow(
                f"step {step.key!r}: trigger must be one of {', '.join(TRIGGER_RULES)}",
                field="steps",
            )
        self.steps[step.key] = step
        return step

    def edges(self) -> Iterable[tuple[str, str]]:
        for step in self.steps.values():
            for upstream in step.after:
                yield upstream, step.key

    def validate(self) -> list[str]:
        """Check the graph's shape and task names; return the steps in dependency order."""
        if not self.steps:
            raise InvalidWorkflow(f"workflow {self.name!r} has no steps", field="steps")
        known = all_definitions()
        for step in self.steps.values():
            for task in filter(None, (step.task, step.compensation)):
                if task not in known:
                    raise InvalidWorkflow(
                        f"step {step.key!r}: unknown task {task!r}", field="steps"
                    )
            if step.compensation_payload is not None and (
                not step.compensation or not isinstance(step.compensation_payload, dict)
            ):
                raise InvalidWorkflow(
                    f"step {step.key!r}: a compensation payload must be an object, given with "
                    "the compensation task",
                    field="steps",
                )
            for upstream in step.after:
                if upstream not in self.steps:
                    raise InvalidWorkflow(
                        f"step {step.key!r} depends on {upstream!r}, which is not a step",
                        field="steps",
                    )
            if len(set(step.after)) != len(step.after):
                raise InvalidWorkflow(f"step {step.key!r} lists a dependency twice", field="steps")
        return self.topological_order()

    def topological_order(self) -> list[str]:
        """Kahn's algorithm; a cycle is refused naming the steps on it."""
        remaining = {key: set(step.after) for key, step in self.steps.items()}
        order: list[str] = []
        ready = [key for key, deps in remaining.items() if not deps]
        dependents: dict[str, list[str]] = {key: [] for key in self.steps}
        for upstream, downstream in self.edges():
            dependents[upstream].append(downstream)
        while ready:
            key = ready.pop(0)
            order.append(key)
            for downstream in dependents[key]:
                remaining[downstream].discard(key)
                if not remaining[downstream]:
                    ready.append(downstream)
            remaining.pop(key)
        if remaining:
            cycle = ", ".join(sorted(remaining))
            raise InvalidWorkflow(
                f"the steps {cycle} depend on each other in a cycle", field="steps"
            )
        return order

    def as_json(self) -> dict[str, Any]:
        """What a run keeps of its graph (for drawing and for retries)."""
        return {
            "name": self.name,
            "version": self.version,
            "steps": [
                {k: v for k, v in asdict(s).items() if _kept(k, v)} for s in self.steps.values()
            ],
        }


def _kept(field_name: str, value: Any) -> bool:
    """Defaults are left out of a run's graph, except an empty compensation payload: ``{}``
    there means "this payload", not "the forward step's" (what a missing one means)."""
    if field_name == "compensation_payload":
        return value is not None
    return value not in (None, False, [], {})
