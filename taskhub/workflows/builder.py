"""The Python way to define a workflow: a function that adds steps to a builder, registered by
name with :func:`workflow`.

::

    @taskhub.workflow("orders.fulfil", on_failure="compensate")
    def fulfil(wf: WorkflowBuilder, input: dict) -> None:
        charge = wf.step("charge", "payments.charge", {"order": input["order"]},
                         compensation="payments.refund")
        thumbs = wf.fan_out("thumb", "images.thumbnail", [{"src": s} for s in input["images"]],
                            after=charge)
        wf.fan_in("publish", "orders.publish", after=thumbs)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from ..definitions.registry import TaskDefinition
from .graph import Graph, InvalidWorkflow, Step
from .models import FailurePolicy

TaskRef = str | TaskDefinition


@dataclass(frozen=True)
class StepRef:
    """A step added to a builder; pass it to ``after=`` or :meth:`WorkflowBuilder.chain`."""

    key: str


@dataclass(frozen=True)
class GroupRef:
    """The steps of one fan-out. Depending on it means depending on every member — or, when
    the fan-out had no items, on what the fan-out itself depended on."""

    key: str
    member_keys: tuple[str, ...]
    upstream: tuple[str, ...] = ()


def keys_of(refs: Any) -> list[str]:
    """Normalise ``after=``: a key, a step/group reference, or a list of those."""
    if refs is None:
        return []
    if isinstance(refs, str | StepRef | GroupRef):
        refs = [refs]
    keys: list[str] = []
    for ref in refs:
        if isinstance(ref, GroupRef):
            keys.extend(ref.member_keys or keys_of(ref.upstream))
        elif isinstance(ref, StepRef):
            keys.append(ref.key)
        elif isinstance(ref, str):
            keys.append(ref)
        else:
            raise InvalidWorkflow(f"cannot depend on {ref!r}: give a step key or reference")
    return list(dict.fromkeys(keys))


def _task_name(task: TaskRef) -> str:
    return task.name if isinstance(task, TaskDefinition) else task


class WorkflowBuilder:
    """Collects steps into a :class:`Graph`. Every method checks what it can at once."""

    def __init__(self, name: str, version: int = 1):
        self.graph = Graph(name=name, version=version)

    def step(
        self,
        key: str,
        task: TaskRef,
        payload: dict[str, Any] | None = None,
        *,
        after: Any = None,
        trigger: str = "all_success",
        when: dict[str, Any] | None = None,
        allow_failure: bool = False,
        compensation: TaskRef | None = None,
        compensation_payload: dict[str, Any] | None = None,
        compensate_failed: bool = False,
        priority: str | int | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
    ) -> StepRef:
        """Add a step running ``task`` with ``payload`` once the steps in ``after`` have ended.

        ``trigger``: ``all_success`` (default; every dependency succeeded, and matched
        ``when`` if given), ``all_done`` (whatever they did — a cleanup or finalizer) or
        ``any_failed`` (an error branch). ``compensation`` names the task that undoes this step
        if the run compensates; it gets this step's payload, or ``compensation_payload`` when
        given; ``compensate_failed`` compensates it even if it failed.
        """
        if when is not None and not isinstance(when, dict):
            raise InvalidWorkflow(f"step {key!r}: when must be an object of result values")
        self.graph.add(
            Step(
                key=key,
                task=_task_name(task),
                payload=dict(payload or {}),
                after=keys_of(after),
                trigger=trigger,
                when=when,
                allow_failure=allow_failure,
                compensation=_task_name(compensation) if compensation else None,
                compensation_payload=(
                    None if compensation_payload is None else dict(compensation_payload)
                ),
                compensate_failed=compensate_failed,
                priority=priority,
                max_attempts=max_attempts,
                timeout=timeout,
            )
        )
        return StepRef(key)

    def chain(self, *refs: StepRef | GroupRef) -> StepRef | GroupRef:
        """Make each of ``refs`` depend on the one before it; return the last."""
        if not refs:
            raise InvalidWorkflow("chain() needs at least one step")
        for upstream, downstream in zip(refs, refs[1:], strict=False):
            targets = (
                downstream.member_keys if isinstance(downstream, GroupRef) else (downstream.key,)
            )
            for target in targets:
                step = self.graph.steps[target]
                step.after = list(dict.fromkeys([*step.after, *keys_of(upstream)]))
        return refs[-1]

    def fan_out(
        self,
        key: str,
        task: TaskRef,
        items: Sequence[dict[str, Any]],
        *,
        after: Any = None,
        **options: Any,
    ) -> GroupRef:
        """One step per item (``key[0]``, ``key[1]``, …), each with the item as its payload.

        Zero items adds no step: whatever depends on the group then waits only for the group's
        own dependencies. Dependents read the members' results as the list
        ``ctx.results[key]``, in item order.
        """
        if not isinstance(items, Sequence) or isinstance(items, str | bytes):
            raise InvalidWorkflow(f"fan_out {key!r}: items must be a list of payloads")
        upstream = tuple(keys_of(after))
        members = tuple(
            self.step(f"{key}[{i}]", task, item, after=list(upstream), **options).key
            for i, item in enumerate(items)
        )
        return GroupRef(key, members, upstream)

    def fan_in(
        self,
        key: str,
        task: TaskRef,
        payload: dict[str, Any] | None = None,
        *,
        after: Any,
        **options: Any,
    ) -> StepRef:
        """A step that runs once everything in ``after`` (typically a fan-out) has ended."""
        return self.step(key, task, payload, after=after, **options)


@dataclass(frozen=True, kw_only=True)
class WorkflowSpec:
    """A workflow defined in Python and registered by name."""

    name: str
    version: int
    build: Callable[[WorkflowBuilder, dict[str, Any]], Any]
    on_failure: str = FailurePolicy.FAIL
    input_schema: type[BaseModel] | None = None
    description: str = ""
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def compile(self, input: dict[str, Any]) -> Graph:
        """Build the graph for one run's input and check it."""
        data: Any = input
        if self.input_schema is not None:
            try:
                data = self.input_schema.model_validate(input)
            except ValidationError as exc:
                errors = {
                    "input." + ".".join(str(p) for p in e["loc"]): [e["msg"]] for e in exc.errors()
                }
                raise InvalidWorkflow(
                    f"invalid input for workflow {self.name!r}: {exc.errors()[0]['msg']}",
                    errors=errors,
                ) from None
        builder = WorkflowBuilder(self.name, self.version)
        self.build(builder, data)
        builder.graph.validate()
        return builder.graph


_workflows: dict[str, WorkflowSpec] = {}


def workflow(
    name: str,
    *,
    version: int = 1,
    on_failure: str = FailurePolicy.FAIL,
    input_schema: type[BaseModel] | None = None,
) -> Callable[[Callable[[WorkflowBuilder, Any], Any]], WorkflowSpec]:
    """Register ``build(wf, input)`` as the workflow ``name``.

    ``on_failure``: ``fail`` (a failed step cancels the rest), ``compensate`` (then undo every
    completed step, newest first) or ``continue`` (independent branches finish first).
    """
    if on_failure not in FailurePolicy.values:
        raise ValueError(f"on_failure must be one of {', '.join(FailurePolicy.values)}")

    def register(build: Callable[[WorkflowBuilder, Any], Any]) -> WorkflowSpec:
        spec = WorkflowSpec(
            name=name,
            version=version,
            build=build,
            on_failure=on_failure,
            input_schema=input_schema,
            description=(build.__doc__ or "").strip(),
        )
        existing = _workflows.get(name)
        if existing is not None and existing.build.__qualname__ != build.__qualname__:
            raise ValueError(f"workflow {name!r} is already registered by {existing.build!r}")
        _workflows[name] = spec
        return spec

    return register


def registered_workflows() -> dict[str, WorkflowSpec]:
    return dict(_workflows)
