"""Operator actions on runs: cancel, retry from the point of failure, and the three ways out of
``compensation_failed`` (retry the compensation, skip it, mark the run resolved). The API, the
admin and the command line all call these; each is one transaction holding the run's row."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..definitions.registry import all_definitions
from ..engine import transitions
from ..engine.broker import wake_dispatcher
from ..engine.events import publish_on_commit
from ..errors import InvalidTransition, TaskhubError
from ..models import DeadLetter, EventKind, Task, TaskEvent, TaskStatus
from ..safety.masking import mask
from . import coordinator
from .coordinator import COMPENSATION, FORWARD, run_event
from .models import StepEdge, WorkflowRun, WorkflowStatus


class WorkflowNotFound(TaskhubError, LookupError):
    """No run has that id (a TaskhubError, so the API answers 404 and the CLI exits 2)."""


def get_run(run_id: str | uuid.UUID, *, lock: bool = False) -> WorkflowRun:
    try:
        query = WorkflowRun.objects.select_for_update() if lock else WorkflowRun.objects
        return query.get(id=uuid.UUID(str(run_id)))
    except (ValueError, WorkflowRun.DoesNotExist):
        raise WorkflowNotFound(f"no workflow run with id {run_id!r}") from None


def cancel_run(
    run_id: str | uuid.UUID, *, compensate: bool = False, reason: str = "", actor: str = ""
) -> WorkflowRun:
    """Cancel a running run: steps that have not started are cancelled, running ones are
    asked to stop, nothing new starts. With ``compensate``, completed steps are then undone."""
    with transaction.atomic():
        run = get_run(run_id, lock=True)
        if run.status != WorkflowStatus.RUNNING:
            raise InvalidTransition(f"workflow run {run.id} is {run.status}, not running")
        now = timezone.now()
        error = reason or f"cancelled{f' by {actor}' if actor else ''}"
        transitions.move_run(
            run,
            "cancel",
            WorkflowStatus.CANCELLING,
            now,
            compensate_on_cancel=compensate,
            error=error,
        )
        run_event(run, "cancelling", now, by=actor, reason=run.error, compensate=compensate)
        cancelled = coordinator.stop_steps(run, now, reason=run.error, include_blocked=True)
        coordinator.settle([r["id"] for r in cancelled], now=now)
        coordinator.finalize([run.id], now=now)
    run.refresh_from_db()
    return run


def retry_run(run_id: str | uuid.UUID, *, actor: str = "") -> WorkflowRun:
    """Run a failed or cancelled run again from where it stopped: steps that failed, were
    cancelled or skipped go round again with fresh attempts; completed steps never re-run."""
    with transaction.atomic():
        run = get_run(run_id, lock=True)
        if run.status not in (WorkflowStatus.FAILED, WorkflowStatus.CANCELLED):
            raise InvalidTransition(
                f"workflow run {run.id} is {run.status}; only failed or cancelled runs retry"
            )
        if Task.objects.filter(workflow_run=run, step_kind=COMPENSATION).exists():
            raise InvalidTransition(f"workflow run {run.id} was compensated; start a new run")
        now = timezone.now()
        again = list(
            Task.objects.select_for_update()
            .filter(workflow_run=run, step_kind=FORWARD)
            .exclude(status=TaskStatus.COMPLETED)
            .order_by("id")
        )
        again_ids = {t.id for t in again}
        StepEdge.objects.filter(run=run, upstream_id__in=again_ids).update(
            resolved_at=None, upstream_status="", satisfied=False
        )
        open_edges: dict[uuid.UUID, int] = {}
        for edge in StepEdge.objects.filter(downstream_id__in=again_ids, resolved_at=None):
            open_edges[edge.downstream_id] = open_edges.get(edge.downstream_id, 0) + 1
        known = all_definitions()
        for task in again:
            definition = known.get(task.name)
            budget = definition.effective_max_attempts if definition else task.max_attempts
            task.deps_remaining = open_edges.get(task.id, 0)
            task.max_attempts = task.attempt + budget
        transitions.rearm_steps(again, now)
        DeadLetter.objects.filter(task_id__in=again_ids).delete()
        publish_on_commit(
            TaskEvent.objects.bulk_create(
                [
                    TaskEvent(
                        task_id=t.id,
                        kind=EventKind.REQUEUED,
                        attempt=t.attempt,
                        at=now,
                        data={"by": actor, "reason": "workflow retried"},
                    )
                    for t in again
                ]
            )
        )
        transitions.move_run(
            run,
            "retry",
            WorkflowStatus.RUNNING,
            now,
            error="",
            finished_at=None,
            compensate_on_cancel=False,
        )
        run_event(run, "retried", now, by=actor, steps=[t.step_key for t in again])
        coordinator.evaluate_blocked(list(again_ids), {run.id: run}, now)
    return run


def _failed_compensation(run: WorkflowRun) -> Task:
    if run.status != WorkflowStatus.COMPENSATION_FAILED:
        raise InvalidTransition(f"workflow run {run.id} is {run.status}, not compensation_failed")
    step = (
        Task.objects.select_for_update()
        .filter(workflow_run=run, step_kind=COMPENSATION)
        .filter(status__in=(TaskStatus.FAILED, TaskStatus.CANCELLED))
        .order_by("-completed_at")
        .first()
    )
    if step is None:
        raise InvalidTransition(f"workflow run {run.id} has no failed compensation")
    return step


def retry_compensation(run_id: str | uuid.UUID, *, actor: str = "") -> WorkflowRun:
    """Run the failed compensation again (fresh attempts); the unwinding then goes on."""
    with transaction.atomic():
        run = get_run(run_id, lock=True)
        step = _failed_compensation(run)
        now = timezone.now()
        budget = all_definitions()[step.name].effective_max_attempts
        transitions.retry(step, now, budget=budget)
        DeadLetter.objects.filter(task_id=step.id).delete()
        publish_on_commit(
            [
                TaskEvent.objects.create(
                    task_id=step.id,
                    kind=EventKind.REQUEUED,
                    attempt=step.attempt,
                    at=now,
                    data={"by": actor},
                )
            ]
        )
        _resume_compensating(run, now, "compensation_retried", actor, step)
        transaction.on_commit(lambda: wake_dispatcher(step.queue))
    return run


def skip_compensation(run_id: str | uuid.UUID, *, actor: str = "") -> WorkflowRun:
    """Leave the failed compensation as it is and go on with the next one."""
    with transaction.atomic():
        run = get_run(run_id, lock=True)
        step = _failed_compensation(run)
        now = timezone.now()
        _resume_compensating(run, now, "compensation_skipped", actor, step)
        runs = {run.id: run}
        edges = list(
            StepEdge.objects.select_for_update().filter(upstream=step, resolved_at__isnull=True)
        )
        StepEdge.objects.filter(id__in=[e.id for e in edges]).update(
            resolved_at=now, upstream_status=step.status, satisfied=True
        )
        downstream = [e.downstream_id for e in edges]
        Task.objects.filter(id__in=downstream).update(deps_remaining=0)
        coordinator.evaluate_blocked(downstream, runs, now)
        coordinator.finalize([run.id], now=now, runs=runs)
    return run


def resolve_compensation(
    run_id: str | uuid.UUID, *, actor: str = "", note: str = ""
) -> WorkflowRun:
    """An operator settled the rest by hand: the run ends ``compensated``; compensations not
    yet attempted are cancelled."""
    with transaction.atomic():
        run = get_run(run_id, lock=True)
        _failed_compensation(run)
        now = timezone.now()
        left = list(
            Task.objects.filter(
                workflow_run=run, step_kind=COMPENSATION, status=TaskStatus.BLOCKED
            ).values_list("id", flat=True)
        )
        transitions.cancel_waiting(left, now, sources=[TaskStatus.BLOCKED])
        publish_on_commit(
            TaskEvent.objects.bulk_create(
                [
                    TaskEvent(
                        task_id=i,
                        kind=EventKind.CANCELLED,
                        attempt=0,
                        at=now,
                        data={"by": actor, "reason": "run marked resolved"},
                    )
                    for i in left
                ]
            )
        )
        error = f"{run.error} — marked resolved by {actor or 'an operator'}" + (
            f": {note}" if note else ""
        )
        transitions.move_run(
            run,
            "resolve_compensation",
            WorkflowStatus.COMPENSATED,
            now,
            finished_at=now,
            error=error,
        )
        run_event(run, "compensation_resolved", now, by=actor, note=note)
    return run


def _resume_compensating(run: WorkflowRun, now, kind: str, actor: str, step: Task) -> None:
    transitions.move_run(run, "resume_compensating", WorkflowStatus.COMPENSATING, now)
    run_event(run, kind, now, by=actor, step=step.step_key)


# -- reading -------------------------------------------------------------------------------------
def run_detail(run: WorkflowRun) -> dict[str, Any]:
    """The run with its steps and edges, as the API and ``taskhub workflow-show`` print it."""
    steps = list(
        Task.objects.filter(workflow_run=run)
        .order_by("created_at", "step_key")
        .values(
            "id",
            "step_key",
            "step_kind",
            "name",
            "status",
            "attempt",
            "max_attempts",
            "result",
            "error",
            "started_at",
            "completed_at",
            "trigger_rule",
            "compensation",
            "compensates_id",
            "queue",
        )
    )
    keys = {s["id"]: s["step_key"] for s in steps}
    edges = [
        {
            "from": keys.get(e["upstream_id"]),
            "to": keys.get(e["downstream_id"]),
            "resolved": e["resolved_at"] is not None,
            "satisfied": e["satisfied"],
            **({"when": e["when"]} if e["when"] else {}),
        }
        for e in StepEdge.objects.filter(run=run)
        .order_by("id")
        .values("upstream_id", "downstream_id", "resolved_at", "satisfied", "when")
    ]
    return {
        **run_summary(run),
        "input": mask(run.input),  # shown, never handed to a step: masked
        "context": run.context,
        "steps": [
            {
                "key": s["step_key"],
                "kind": s["step_kind"],
                "task_id": str(s["id"]),
                "task": s["name"],
                "queue": s["queue"],
                "status": s["status"],
                "attempts": s["attempt"],
                "max_attempts": s["max_attempts"],
                "result": s["result"],
                "error": s["error"],
                "trigger": s["trigger_rule"],
                "compensation": s["compensation"] or None,
                "compensates": keys.get(s["compensates_id"]),
                "started_at": _iso(s["started_at"]),
                "completed_at": _iso(s["completed_at"]),
            }
            for s in steps
        ],
        "edges": edges,
    }


def run_summary(run: WorkflowRun) -> dict[str, Any]:
    return {
        "id": str(run.id),
        "definition": run.name,
        "version": run.version,
        "status": run.status,
        "on_failure": run.on_failure,
        "error": run.error,
        "idempotency_key": run.idempotency_key,
        "user_id": run.user_id,
        "correlation_id": run.correlation_id,
        "deadline_at": _iso(run.deadline_at),
        "created_at": _iso(run.created_at),
        "updated_at": _iso(run.updated_at),
        "finished_at": _iso(run.finished_at),
    }


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def run_events(run: WorkflowRun) -> list[dict[str, Any]]:
    """The run's own timeline (started, step_failed, compensating, …), oldest first."""
    return [{"kind": e.kind, "at": _iso(e.at), "data": e.data} for e in run.events.order_by("id")]
