"""The coordinator: reacts to steps that ended, inside the transaction that ended them.

Every place that moves a task to a final state (the worker's outcome writer, the lifeline,
operator cancels) calls :func:`settle` in the same transaction. For each step that ended it
resolves the step's outgoing edges — each edge exactly once, locked and guarded by
``resolved_at IS NULL`` — decrements the dependents' ``deps_remaining`` by the number of edges
resolved, and moves a dependent whose count reached 0 from ``blocked`` to ``pending`` or
``skipped`` according to its trigger rule. A duplicated message, a retry or a crash can neither
resolve an edge twice nor leave one unresolved: the step's final transition and its edges commit
together or not at all. When no step of a run is left to run, :func:`finalize` decides the run.
No polling, no barrier keys, no state in the broker; the reconciler (taskhub.workflows.
reconciler) only repairs what something outside these paths left behind.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from ..definitions.payloads import validate_payload
from ..definitions.registry import get_definition
from ..engine import claims, transitions
from ..engine.broker import wake_dispatcher
from ..engine.events import publish_on_commit
from ..errors import InvalidTaskRequest
from ..models import ACTIVE_STATUSES, EventKind, Task, TaskEvent, TaskStatus
from .models import (
    FailurePolicy,
    StepEdge,
    WorkflowEvent,
    WorkflowRun,
    WorkflowStatus,
)
from .rules import decide, edge_satisfied

logger = logging.getLogger(__name__)

FORWARD, COMPENSATION = "forward", "compensation"
ENDED = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.SKIPPED)
#: Statuses of a step that has not started yet and can simply be cancelled.
NOT_STARTED = (TaskStatus.PENDING, TaskStatus.RETRYING, TaskStatus.BLOCKED)
_ROW = (
    "id",
    "status",
    "workflow_run_id",
    "step_kind",
    "step_key",
    "allow_failure",
    "result",
    "error",
    "queue",
    "attempt",
    "parent_id",
)


def settle(task_ids: Iterable[uuid.UUID | str], *, now: dt.datetime | None = None) -> None:
    """Resolve what depends on these tasks, which just reached a final state.

    Must run inside the transaction that made them final. Tasks outside workflows (and without
    a parent waiting for them) cost one indexed query and nothing else.
    """
    ids = {uuid.UUID(str(i)) for i in task_ids}
    if not ids:
        return
    now = now or timezone.now()
    rows = list(
        Task.objects.filter(id__in=ids, status__in=ENDED)
        .filter(Q(workflow_run__isnull=False) | Q(parent__isnull=False))
        .values(*_ROW)
    )
    if not rows:
        return
    runs = _lock_runs({r["workflow_run_id"] for r in rows if r["workflow_run_id"]})
    touched: set[uuid.UUID] = set()
    while rows:
        touched |= {r["workflow_run_id"] for r in rows if r["workflow_run_id"]}
        rows = rows + _on_step_failures(rows, runs, now)
        rows = _resolve_edges(rows, runs, now)
    finalize(touched, now=now, runs=runs)


def _lock_runs(run_ids: set) -> dict[uuid.UUID, WorkflowRun]:
    # Always in id order, so two transactions settling steps of the same runs can't deadlock
    # on the runs; holding the run row also serialises its finalisation.
    if not run_ids:
        return {}
    locked = WorkflowRun.objects.select_for_update().filter(id__in=run_ids).order_by("id")
    return {run.id: run for run in locked}


def run_event(run: WorkflowRun, kind: str, now: dt.datetime, **data: Any) -> None:
    WorkflowEvent.objects.create(run=run, kind=kind, at=now, data=data)


# -- failures ------------------------------------------------------------------------------------
def _on_step_failures(rows: list[dict], runs: dict, now: dt.datetime) -> list[dict]:
    """A forward step failed or was cancelled: record why the run fails and, unless the run
    continues on failure, cancel its steps that have not started and stop the running ones.
    A compensation that failed for good stops the unwinding. Returns the cancelled rows."""
    cancelled: list[dict] = []
    for row in rows:
        run = runs.get(row["workflow_run_id"])
        if run is None:
            continue
        if row["step_kind"] == COMPENSATION and row["status"] in (
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
        ):
            _compensation_failed(run, row, now)
            continue
        failed = row["status"] == TaskStatus.FAILED and not row["allow_failure"]
        if row["step_kind"] != FORWARD or run.status != WorkflowStatus.RUNNING:
            continue
        if not (failed or row["status"] == TaskStatus.CANCELLED) or run.error:
            continue
        verb = "failed" if failed else "was cancelled"
        run.error = f"step {row['step_key']} {verb}" + (f": {row['error']}" if row["error"] else "")
        run.updated_at = now
        run.save(update_fields=["error", "updated_at"])
        run_event(run, "step_failed", now, step=row["step_key"], error=row["error"])
        if run.on_failure != FailurePolicy.CONTINUE:
            cancelled += stop_steps(run, now, reason=f"step {row['step_key']} {verb}")
    return cancelled


def _compensation_failed(run: WorkflowRun, row: dict, now: dt.datetime) -> None:
    if run.status != WorkflowStatus.COMPENSATING:
        return
    error = f"compensation {row['step_key']} failed" + (f": {row['error']}" if row["error"] else "")
    transitions.move_run(
        run, "compensation_failed", WorkflowStatus.COMPENSATION_FAILED, now, error=error
    )
    run_event(run, "compensation_failed", now, step=row["step_key"], error=row["error"])


def stop_steps(
    run: WorkflowRun, now: dt.datetime, *, reason: str, include_blocked: bool = False
) -> list[dict]:
    """Cancel the run's forward steps that have not started; ask running ones to stop.

    A queued step whose attempt a worker already claimed counts as running (it may be
    executing): it is asked to stop rather than marked cancelled behind the worker's back.
    Blocked steps are left to their trigger rules unless ``include_blocked``.
    """
    waiting = [TaskStatus.PENDING, TaskStatus.RETRYING, TaskStatus.QUEUED]
    if include_blocked:
        waiting.append(TaskStatus.BLOCKED)
    steps = list(
        Task.objects.select_for_update()
        .filter(workflow_run=run, step_kind=FORWARD, status__in=waiting)
        .order_by("id")
        .values("id", "status", "attempt")
    )
    queued = [s for s in steps if s["status"] == TaskStatus.QUEUED]
    holders = claims.claim_holders([(str(s["id"]), s["attempt"]) for s in queued])
    claimed = {s["id"] for s, holder in zip(queued, holders, strict=True) if holder}
    cancel = [s for s in steps if s["id"] not in claimed]
    ids = [s["id"] for s in cancel]
    transitions.cancel_waiting(ids, now, sources=waiting)
    running = list(
        Task.objects.filter(
            Q(status=TaskStatus.RUNNING) | Q(id__in=claimed),
            workflow_run=run,
            step_kind=FORWARD,
            cancel_requested=False,
        ).values_list("id", "attempt")
    )
    Task.objects.filter(id__in=[i for i, _ in running]).update(
        cancel_requested=True, updated_at=now
    )
    events = [
        TaskEvent(
            task_id=s["id"],
            kind=EventKind.CANCELLED,
            attempt=s["attempt"],
            at=now,
            data={"reason": reason},
        )
        for s in cancel
    ] + [
        TaskEvent(
            task_id=i, kind=EventKind.CANCEL_REQUESTED, attempt=a, at=now, data={"reason": reason}
        )
        for i, a in running
    ]
    publish_on_commit(TaskEvent.objects.bulk_create(events))
    flags = [(str(s["id"]), s["attempt"]) for s in cancel] + [(str(i), a) for i, a in running]
    if flags:
        transaction.on_commit(lambda: claims.set_cancel_flags(flags))
    return list(Task.objects.filter(id__in=ids, status=TaskStatus.CANCELLED).values(*_ROW))


# -- edges ---------------------------------------------------------------------------------------
def _resolve_edges(rows: list[dict], runs: dict, now: dt.datetime) -> list[dict]:
    """Resolve the open edges out of ``rows``; release or skip dependents that are now
    decided. Returns the rows of steps skipped here (they ended too: their edges are next)."""
    by_id = {
        r["id"]: r
        for r in rows
        # A failed compensation holds the unwinding where it is until an operator acts.
        if not (r["step_kind"] == COMPENSATION and r["status"] != TaskStatus.COMPLETED)
    }
    if not by_id:
        return []
    edges = list(
        StepEdge.objects.select_for_update()
        .filter(upstream_id__in=by_id, resolved_at__isnull=True)
        .order_by("id")
        .values("id", "upstream_id", "downstream_id", "when")
    )
    if not edges:
        return []
    groups: dict[tuple[str, bool], list[int]] = defaultdict(list)
    for edge in edges:
        up = by_id[edge["upstream_id"]]
        groups[(up["status"], edge_satisfied(up, edge["when"]))].append(edge["id"])
    for (status, satisfied), edge_ids in groups.items():
        StepEdge.objects.filter(id__in=edge_ids, resolved_at__isnull=True).update(
            resolved_at=now, upstream_status=status, satisfied=satisfied
        )
    counts = Counter(e["downstream_id"] for e in edges)
    # Lock dependents in id order (no deadlock between two flushes sharing a fan-in).
    list(Task.objects.select_for_update().filter(id__in=counts).order_by("id").values("id"))
    by_count: dict[int, list] = defaultdict(list)
    for downstream, n in counts.items():
        by_count[n].append(downstream)
    for n, ids in by_count.items():
        Task.objects.filter(id__in=ids).update(deps_remaining=F("deps_remaining") - n)
    return evaluate_blocked(list(counts), runs, now)


def evaluate_blocked(task_ids: list, runs: dict, now: dt.datetime) -> list[dict]:
    """Release or skip the blocked steps among ``task_ids`` whose dependencies all ended."""
    ready = list(
        Task.objects.filter(
            id__in=task_ids, status=TaskStatus.BLOCKED, deps_remaining__lte=0
        ).values(
            "id", "trigger_rule", "workflow_run_id", "step_kind", "queue", "attempt", "parent_id"
        )
    )
    if not ready:
        return []
    edges: dict[uuid.UUID, list[dict]] = defaultdict(list)
    for edge in StepEdge.objects.filter(downstream_id__in=[r["id"] for r in ready]).values(
        "downstream_id", "upstream_status", "satisfied"
    ):
        edges[edge["downstream_id"]].append(edge)
    parents = set(
        Task.objects.filter(parent_id__in=[r["id"] for r in ready]).values_list(
            "parent_id", flat=True
        )
    )
    release, skip, complete, fail = [], [], [], []
    for step in ready:
        run = runs.get(step["workflow_run_id"])
        verdict = decide(step, edges[step["id"]], run, waiting_for_children=step["id"] in parents)
        {"run": release, "skip": skip, "complete": complete, "fail": fail}[verdict].append(step)
    _release(release, now)
    _end(skip, TaskStatus.SKIPPED, now, "dependencies did not allow it")
    # A parent whose children all ended: it completes (or fails) now (taskhub.workflows.children)
    _end(complete, TaskStatus.COMPLETED, now, "children finished")
    _end(fail, TaskStatus.FAILED, now, "a child failed")
    ended = [s["id"] for s in skip + complete + fail]
    return list(Task.objects.filter(id__in=ended).values(*_ROW))


def _release(steps: list[dict], now: dt.datetime) -> None:
    if not steps:
        return
    transitions.release([(s["id"], s["attempt"]) for s in steps], now)
    queues = {s["queue"] for s in steps}
    transaction.on_commit(lambda: wake_dispatcher(*queues))


def _end(steps: list[dict], status: str, now: dt.datetime, reason: str) -> None:
    if steps:
        transitions.end_blocked(
            [(s["id"], s["attempt"]) for s in steps], status, now, reason=reason
        )


# -- runs ----------------------------------------------------------------------------------------
def finalize(
    run_ids: Iterable[uuid.UUID], *, now: dt.datetime | None = None, runs: dict | None = None
) -> None:
    """Decide each run that has no step left to run: succeeded, failed, cancelled, or the
    start (or end) of its compensation."""
    now = now or timezone.now()
    runs = runs if runs is not None else _lock_runs(set(run_ids))
    for run_id in sorted(set(run_ids), key=str):
        run = runs.get(run_id)
        if run is None or run.status in (
            WorkflowStatus.SUCCEEDED,
            WorkflowStatus.FAILED,
            WorkflowStatus.CANCELLED,
            WorkflowStatus.COMPENSATED,
            WorkflowStatus.COMPENSATION_FAILED,
        ):
            continue
        if Task.objects.filter(workflow_run=run, status__in=ACTIVE_STATUSES).exists():
            continue
        if run.status == WorkflowStatus.RUNNING and not run.error:
            _finish(run, WorkflowStatus.SUCCEEDED, now)
        elif run.status == WorkflowStatus.RUNNING:
            if run.on_failure == FailurePolicy.COMPENSATE:
                begin_compensation(run, now)
            else:
                _finish(run, WorkflowStatus.FAILED, now)
        elif run.status == WorkflowStatus.CANCELLING:
            if run.compensate_on_cancel:
                begin_compensation(run, now)
            else:
                _finish(run, WorkflowStatus.CANCELLED, now)
        elif run.status == WorkflowStatus.COMPENSATING:
            _finish(run, WorkflowStatus.COMPENSATED, now)


def _finish(run: WorkflowRun, status: str, now: dt.datetime) -> None:
    transitions.move_run(run, "finish", status, now, finished_at=now)
    run_event(run, status, now, error=run.error)
    logger.info("workflow %s %s %s", run.name, run.id, status)


def begin_compensation(run: WorkflowRun, now: dt.datetime) -> None:
    """Undo every completed step that has a compensation, newest first, one at a time.

    The compensations form a chain of ordinary steps (pending → blocked → …), so the same
    coordinator runs them exactly once each. A step that opted in with ``compensate_failed``
    is compensated even though it failed or was stopped, if it had started.
    """
    done = (
        Task.objects.filter(workflow_run=run, step_kind=FORWARD)
        .exclude(compensation="")
        .filter(
            Q(status=TaskStatus.COMPLETED)
            | Q(
                compensate_failed=True,
                started_at__isnull=False,
                status__in=(TaskStatus.FAILED, TaskStatus.CANCELLED),
            )
        )
    )
    order = {key: i for i, key in enumerate(s["key"] for s in run.graph.get("steps", []))}
    forward = sorted(
        done, key=lambda t: (t.completed_at or now, order.get(t.step_key, 0)), reverse=True
    )
    transitions.move_run(run, "begin_compensation", WorkflowStatus.COMPENSATING, now)
    run_event(run, "compensating", now, steps=[t.step_key for t in forward])
    if not forward:
        _finish(run, WorkflowStatus.COMPENSATED, now)
        return
    try:
        rows = _compensation_rows(run, forward, now)
    except InvalidTaskRequest as exc:  # checked at start; a task changed under a running run
        error = f"cannot compensate: {exc}"
        failed = WorkflowStatus.COMPENSATION_FAILED
        transitions.move_run(run, "compensation_failed", failed, now, error=error)
        run_event(run, "compensation_failed", now, error=run.error)
        return
    Task.objects.bulk_create(rows)
    StepEdge.objects.bulk_create(
        StepEdge(run=run, upstream=a, downstream=b) for a, b in zip(rows, rows[1:], strict=False)
    )
    publish_on_commit(
        TaskEvent.objects.bulk_create(
            [
                TaskEvent(
                    task_id=r.id,
                    kind=EventKind.CREATED if i == 0 else EventKind.BLOCKED,
                    attempt=0,
                    at=now,
                    data={"compensates": r.compensates.step_key},
                )
                for i, r in enumerate(rows)
            ]
        )
    )
    queue = rows[0].queue
    transaction.on_commit(lambda: wake_dispatcher(queue))


def _compensation_rows(run: WorkflowRun, forward: list[Task], now: dt.datetime) -> list[Task]:
    """One compensation step per forward step, chained in the given order. Each gets its own
    payload if its definition gave one, else the forward step's (ctx.forward has the forward
    step's payload, result and idempotency key either way)."""
    own_payloads = {
        s["key"]: s["compensation_payload"]
        for s in run.graph.get("steps", [])
        if "compensation_payload" in s
    }
    rows = []
    for index, step in enumerate(forward):
        definition = get_definition(step.compensation)
        payload = own_payloads.get(step.step_key, step.payload)
        rows.append(
            transitions.insert_new(
                Task(
                    id=uuid.uuid4(),
                    name=definition.name,
                    task_type=definition.task_type,
                    queue=definition.queue,
                    payload=validate_payload(definition, payload),
                    priority=step.priority,
                    max_attempts=definition.effective_max_attempts,
                    timeout=definition.effective_timeout,
                    scheduled_at=now,
                    correlation_id=step.correlation_id,
                    user_id=step.user_id,
                    created_at=now,
                    updated_at=now,
                    workflow_run=run,
                    step_key=f"compensate:{step.step_key}",
                    step_kind=COMPENSATION,
                    trigger_rule="all_success",
                    compensates=step,
                    deps_remaining=0 if index == 0 else 1,
                ),
                waiting=index > 0,
            )
        )
    return rows
