"""What a step reads from its workflow: its dependencies' results, the run's input and shared
context, and — for a compensation — the step it undoes. Read from rows on first use, never
carried in messages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..models import Task
from .models import StepEdge, WorkflowRun

_MEMBER = re.compile(r"^(?P<group>.+)\[(?P<index>\d+)\]$")


@dataclass(frozen=True)
class WorkflowInfo:
    """``ctx.workflow``: the run a step belongs to (read-only)."""

    run_id: str
    name: str
    version: int
    step: str
    input: dict[str, Any]
    context: dict[str, Any]


@dataclass(frozen=True)
class ForwardStep:
    """``ctx.forward`` in a compensation: the step being undone."""

    step: str
    task_id: str
    status: str
    payload: dict[str, Any]
    result: Any
    #: the idempotency key the forward step used with providers (its task id)
    idempotency_key: str


def workflow_info(task_id: str) -> WorkflowInfo | None:
    row = Task.objects.filter(id=task_id).values("workflow_run_id", "step_key").first()
    if row is None or row["workflow_run_id"] is None:
        return None
    run = WorkflowRun.objects.get(id=row["workflow_run_id"])
    return WorkflowInfo(str(run.id), run.name, run.version, row["step_key"], run.input, run.context)


def dependency_results(task_id: str) -> dict[str, Any]:
    """Results of the steps this one depends on, by step key. The members of a fan-out are
    also gathered under the fan-out's key as a list in item order (None where one failed)."""
    upstream = StepEdge.objects.filter(downstream_id=task_id).values_list("upstream_id", flat=True)
    rows = Task.objects.filter(id__in=upstream).values("step_key", "result")
    results: dict[str, Any] = {}
    groups: dict[str, dict[int, Any]] = {}
    for row in rows:
        results[row["step_key"]] = row["result"]
        member = _MEMBER.match(row["step_key"])
        if member:
            groups.setdefault(member["group"], {})[int(member["index"])] = row["result"]
    for group, members in groups.items():
        results.setdefault(group, [members[i] for i in sorted(members)])
    return results


def child_results(task_id: str) -> list[Any]:
    """Results of the children a parent spawned, in the order it spawned them."""
    rows = Task.objects.filter(parent_id=task_id).order_by("created_at", "step_key")
    return list(rows.values_list("result", flat=True))


def forward_step(task_id: str) -> ForwardStep | None:
    row = Task.objects.filter(id=task_id).values("compensates_id").first()
    if row is None or row["compensates_id"] is None:
        return None
    forward = Task.objects.get(id=row["compensates_id"])
    return ForwardStep(
        forward.step_key,
        str(forward.id),
        forward.status,
        forward.payload,
        forward.result,
        str(forward.id),
    )
