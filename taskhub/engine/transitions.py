"""The one writer of task and workflow-run status: every transition is a named function here.

Each function states its from → to and the guard it enforces, and writes only rows that match
that guard (status, and the attempt where one is named), so a stale or duplicated caller changes
nothing. The tables below are the contract: ``TASK_TRANSITIONS`` and ``RUN_TRANSITIONS`` list
every status a row may leave by each transition and every status it may reach, and each
function refuses (ValueError) a target or a source its table does not allow.

Batch writers (the dispatcher, the outcome writer, the lifeline) keep one statement per batch:
these functions take their rows and return the (id, attempt) pairs actually changed. Each
table entry names the events of its transition and who records them: the function itself, or
the caller in the same transaction — a batch writer inserts a cycle's or a flush's events in
one statement (they interleave with started events and dead letters), and an operator action
records who asked and why.
tests/unit/test_transitions.py checks each function against its table on real rows, and that no
other module writes a status.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import F

from ..errors import InvalidTransition
from ..models import EventKind, Task, TaskEvent, TaskStatus, WorkflowRun, WorkflowStatus
from .events import publish_on_commit
from .store import guarded_update, insert_events, server_cursor

S = TaskStatus
R = WorkflowStatus


@dataclass(frozen=True)
class Transition:
    """One named move of a row's status."""

    name: str
    sources: tuple[str, ...]  # statuses the row may be in (empty: the row is being inserted)
    targets: tuple[str, ...]  # statuses the transition may write
    guard: str  # what else the write requires of the row, in words
    events: str  # the events recorded with it, and by whom


_SAME_ATTEMPT = "attempt matches"
_HERE = "recorded here"

#: Every status write of a task row.
TASK_TRANSITIONS: dict[str, Transition] = {
    t.name: t
    for t in (
        Transition(
            "insert_new", (), (S.PENDING, S.BLOCKED), "a new row", "created | blocked (caller)"
        ),
        Transition(
            "mark_queued",
            (S.PENDING, S.RETRYING),
            (S.QUEUED,),
            "queue matches, scheduled_at <= now, highest priority (unless off) first; attempt + 1",
            "queued (caller, one insert per dispatch cycle)",
        ),
        Transition(
            "unqueue",
            (S.QUEUED,),
            (S.PENDING,),
            f"{_SAME_ATTEMPT}; max_attempts + 1",
            f"recovered ({_HERE})",
        ),
        Transition(
            "mark_running",
            (S.QUEUED,),
            (S.RUNNING,),
            _SAME_ATTEMPT,
            "started (caller, one insert per flush)",
        ),
        Transition(
            "finish",
            (S.QUEUED, S.RUNNING),
            (S.COMPLETED, S.FAILED, S.CANCELLED, S.RETRYING, S.BLOCKED),
            _SAME_ATTEMPT,
            "started if unwritten, then the outcome's, + dead_lettered (caller, one insert per "
            "flush)",
        ),
        Transition(
            "hand_back",
            (S.QUEUED, S.RUNNING),
            (S.PENDING,),
            f"{_SAME_ATTEMPT} (queued only, if it never started here); max_attempts + 1",
            "recovered (caller, with finish's)",
        ),
        Transition(
            "recover_lost",
            (S.QUEUED, S.RUNNING),
            (S.PENDING, S.FAILED),
            f"{_SAME_ATTEMPT}; failed once attempt >= max_attempts",
            "recovered | failed + dead_lettered (caller, with the dead letters)",
        ),
        Transition(
            "cancel_lost",
            (S.QUEUED, S.RUNNING),
            (S.CANCELLED,),
            _SAME_ATTEMPT,
            f"cancelled ({_HERE})",
        ),
        Transition(
            "cancel_waiting",
            (S.PENDING, S.QUEUED, S.RETRYING, S.BLOCKED),
            (S.CANCELLED,),
            "any attempt (the caller holds the row lock)",
            "cancelled (caller: who and why differ)",
        ),
        Transition(
            "retry",
            (S.FAILED, S.CANCELLED),
            (S.PENDING,),
            "any attempt; max_attempts = attempt + budget",
            "requeued (caller)",
        ),
        Transition(
            "rearm_step",
            (
                S.PENDING,
                S.QUEUED,
                S.RUNNING,
                S.RETRYING,
                S.FAILED,
                S.CANCELLED,
                S.BLOCKED,
                S.SKIPPED,
            ),
            (S.BLOCKED,),
            "a workflow step that did not complete, its run being retried",
            "requeued (caller)",
        ),
        Transition(
            "release",
            (S.BLOCKED,),
            (S.PENDING,),
            "its dependencies allow it to run",
            f"released ({_HERE})",
        ),
        Transition(
            "end_blocked",
            (S.BLOCKED,),
            (S.SKIPPED, S.COMPLETED, S.FAILED),
            "its dependencies (or children) ended",
            f"skipped | completed | failed ({_HERE})",
        ),
    )
}

#: Every status write of a workflow run. Their run events are recorded by the callers.
RUN_TRANSITIONS: dict[str, Transition] = {
    t.name: t
    for t in (
        Transition("start", (), (R.RUNNING,), "a new run", "started"),
        Transition(
            "cancel", (R.RUNNING,), (R.CANCELLING,), "an operator or a deadline", "cancelling"
        ),
        Transition(
            "finish",
            (R.RUNNING, R.CANCELLING, R.COMPENSATING),
            (R.SUCCEEDED, R.FAILED, R.CANCELLED, R.COMPENSATED),
            "no step left to run; the target follows from the source (RUN_FINISHES)",
            "the status reached",
        ),
        Transition(
            "begin_compensation",
            (R.RUNNING, R.CANCELLING),
            (R.COMPENSATING,),
            "no step left to run",
            "compensating",
        ),
        Transition(
            "compensation_failed",
            (R.COMPENSATING,),
            (R.COMPENSATION_FAILED,),
            "a compensation failed for good",
            "compensation_failed",
        ),
        Transition(
            "resume_compensating",
            (R.COMPENSATION_FAILED,),
            (R.COMPENSATING,),
            "an operator retried or skipped the failed compensation",
            "compensation_retried | compensation_skipped",
        ),
        Transition(
            "resolve_compensation",
            (R.COMPENSATION_FAILED,),
            (R.COMPENSATED,),
            "an operator settled it by hand",
            "compensation_resolved",
        ),
        Transition("retry", (R.FAILED, R.CANCELLED), (R.RUNNING,), "an operator", "retried"),
    )
}

#: What the run's finish writes from each status it is left in.
RUN_FINISHES = {
    R.RUNNING: (R.SUCCEEDED, R.FAILED),
    R.CANCELLING: (R.CANCELLED,),
    R.COMPENSATING: (R.COMPENSATED,),
}

_TABLE = Task._meta.db_table


def _sources(name: str, to: Iterable[str], narrower: Sequence[str] | None = None) -> list[str]:
    """The from-statuses of task transition ``name`` (or the caller's narrower subset), once
    ``to`` is checked against its targets."""
    transition = TASK_TRANSITIONS[name]
    bad = set(to) - set(transition.targets)
    if bad:
        raise ValueError(f"{name} cannot move a task to {sorted(bad)}")
    sources = list(narrower if narrower is not None else transition.sources)
    if not set(sources) <= set(transition.sources):
        raise ValueError(f"{name} cannot move a task from {sorted(set(sources))}")
    return sources


# -- task rows: inserting ------------------------------------------------------------------------
def insert_new(row: Task, *, waiting: bool) -> Task:
    """(new row) → ``blocked`` if it waits for dependencies or children, else ``pending``.
    Sets the status of a row about to be inserted; returns it."""
    row.status = TaskStatus.BLOCKED if waiting else TaskStatus.PENDING
    return row


# -- task rows: the dispatcher ---------------------------------------------------------------------
# PostgreSQL: the ids are picked once (an InitPlan) and then fetched by primary key. Written as
# ``id IN (subquery)``, stale statistics (a table analysed empty, then bulk-loaded) made the
# planner pick a semi join that re-ran the subquery for every row of the table: 2 s per cycle at
# 20,000 rows, measured.
_PICK = """
    SELECT id FROM {table}
    WHERE queue = %s AND status IN ('pending', 'retrying') AND scheduled_at <= %s
    ORDER BY {order}
    LIMIT %s {lock}
"""
#: The order ready rows are picked in: highest priority, then the longest due; or, with
#: priorities off (TASKHUB["ENABLE_PRIORITY"]), the longest due alone.
_BY_PRIORITY, _BY_DUE_TIME = "priority DESC, scheduled_at", "scheduled_at"
_CLAIM_SQL = """
UPDATE {table} SET status = 'queued', attempt = attempt + 1, queued_at = %s, updated_at = %s
WHERE {pick}
RETURNING id, name, queue, attempt, max_attempts, payload, correlation_id, user_id, timeout,
          priority, workflow_run_id, parent_id, scheduled_at
"""


def _coordinated(rows: list[tuple]) -> list[tuple]:
    # Whether a row is coordinated is worked out here, not in RETURNING: SQLite 3.40 evaluates
    # ``parent_id IS NOT NULL`` there as true for every row (tests/unit/test_lifeline.py's
    # coordinated-step test caught every envelope saying "coordinated").
    return [(*r[:10], r[10] is not None or r[11] is not None, r[12]) for r in rows]


def mark_queued(
    queue: str, limit: int, now: dt.datetime, *, by_priority: bool = True
) -> list[tuple]:
    """``pending``/``retrying`` → ``queued``, attempt + 1: up to ``limit`` rows of ``queue``
    due by ``now``, highest priority first — or, ``by_priority`` False, the longest due first —
    (one statement, in the caller's transaction).

    Returns (id, name, queue, attempt, max_attempts, payload, correlation_id, user_id,
    timeout, priority, coordinated, scheduled_at) per row, in no particular order (UPDATE …
    RETURNING keeps none); the caller records the ``queued`` events.
    """
    params = [now, now, queue, now, limit]
    order = _BY_PRIORITY if by_priority else _BY_DUE_TIME
    if connection.vendor == "postgresql":
        pick = _PICK.format(table=_TABLE, order=order, lock="FOR UPDATE SKIP LOCKED")
        with server_cursor() as cursor:
            cursor.execute(_CLAIM_SQL.format(table=_TABLE, pick=f"id = ANY(ARRAY({pick}))"), params)
            return _coordinated(cursor.fetchall())
    pick = _PICK.format(table=_TABLE, order=order, lock="")
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL.format(table=_TABLE, pick=f"id IN ({pick})"), params)
        return _coordinated(cursor.fetchall())


def unqueue(
    attempts: Sequence[tuple[Any, int]], now: dt.datetime, *, reason: str
) -> set[tuple[uuid.UUID, int]]:
    """``queued`` → ``pending``, guarded by attempt: a message that never left. The attempt
    keeps its number and is not charged (max_attempts + 1). Records a ``recovered`` event
    (``reason``) per row changed; returns the pairs changed."""
    changed = guarded_update(
        ("id", "attempt", "status", "updated_at"),
        [(t, a, TaskStatus.PENDING, now) for t, a in attempts],
        "status = v.status, max_attempts = {t}.max_attempts + 1, updated_at = v.updated_at",
        _sources("unqueue", [TaskStatus.PENDING]),
    )
    insert_events(
        [
            TaskEvent(
                task_id=t, kind=EventKind.RECOVERED, attempt=a, at=now, data={"reason": reason}
            )
            for t, a in changed
        ]
    )
    return changed


# -- task rows: the worker's outcome writer ------------------------------------------------------
_START_SET = (
    "status = v.status, started_at = v.started_at, worker_id = v.worker_id, "
    "updated_at = v.updated_at"
)
#: The columns of a row of :func:`finish`, in order.
FINISH_COLUMNS = (
    "id",
    "attempt",
    "status",
    "result",
    "error",
    "traceback",
    "started_at",
    "completed_at",
    "duration",
    "scheduled_at",
    "progress",
    "worker_id",
    "updated_at",
)
_FINISH_SET = (
    "status = v.status, result = v.result, error = v.error, traceback = v.traceback, "
    "started_at = v.started_at, completed_at = v.completed_at, duration = v.duration, "
    "scheduled_at = COALESCE(v.scheduled_at, {t}.scheduled_at), "
    "progress = COALESCE(v.progress, {t}.progress), worker_id = v.worker_id, "
    "updated_at = v.updated_at"
)
# Handing an attempt back (queue paused, worker shutting down, claim unsettled): it never
# finished. Its number stays used (the next dispatch is a new attempt, so a thread still running
# this one can never pass for it) and the attempt is not charged: the limit moves up with it.
_HAND_BACK_SET = (
    "status = v.status, max_attempts = {t}.max_attempts + 1, started_at = NULL, "
    "scheduled_at = COALESCE(v.scheduled_at, {t}.scheduled_at), updated_at = v.updated_at"
)


def mark_running(
    starts: Sequence[tuple[Any, int, dt.datetime]], worker_id: str, now: dt.datetime
) -> set[tuple[uuid.UUID, int]]:
    """``queued`` → ``running``, guarded by attempt: (task id, attempt, started_at) per row.
    Returns the pairs changed; the caller records their ``started`` events."""
    return guarded_update(
        ("id", "attempt", "status", "started_at", "worker_id", "updated_at"),
        [(t, a, TaskStatus.RUNNING, started, worker_id, now) for t, a, started in starts],
        _START_SET,
        _sources("mark_running", [TaskStatus.RUNNING]),
    )


def finish(rows: Sequence[Sequence[Any]]) -> set[tuple[uuid.UUID, int]]:
    """``queued``/``running`` → ``completed``/``failed``/``cancelled``/``retrying``/``blocked``,
    guarded by attempt. Each row holds :data:`FINISH_COLUMNS`; a None ``scheduled_at`` or
    ``progress`` keeps the row's. Returns the pairs changed."""
    sources = _sources("finish", {r[2] for r in rows})
    return guarded_update(FINISH_COLUMNS, rows, _FINISH_SET, sources)


def hand_back(
    rows: Sequence[tuple[Any, int, dt.datetime | None]], now: dt.datetime, *, started: bool
) -> set[tuple[uuid.UUID, int]]:
    """``queued``/``running`` → ``pending``, guarded by attempt; an attempt that never
    started here only from ``queued`` (a row that says running is someone else's). Rows are
    (task id, attempt, scheduled_at or None to keep it). Not charged: max_attempts + 1."""
    sources = [TaskStatus.QUEUED, TaskStatus.RUNNING] if started else [TaskStatus.QUEUED]
    return guarded_update(
        ("id", "attempt", "status", "scheduled_at", "updated_at"),
        [(t, a, TaskStatus.PENDING, at, now) for t, a, at in rows],
        _HAND_BACK_SET,
        _sources("hand_back", [TaskStatus.PENDING], sources),
    )


# -- task rows: the lifeline -------------------------------------------------------------------
def recover_lost(
    retry: Sequence[tuple[Any, int]], final: Sequence[tuple[Any, int]], error: str, now
) -> tuple[set[tuple[uuid.UUID, int]], set[tuple[uuid.UUID, int]]]:
    """``queued``/``running`` → ``pending`` (``retry``: attempts left) or ``failed``
    (``final``: out of attempts), guarded by attempt, ``error`` recorded. Returns the pairs
    sent round again and the pairs failed.

    A row sent round again keeps its ``scheduled_at`` (already past: it was running): it takes
    its old place in the dispatcher's order, ahead of work that became due after it, instead
    of waiting behind a whole backlog for a second time."""
    sources = _sources("recover_lost", [TaskStatus.PENDING, TaskStatus.FAILED])
    again = guarded_update(
        ("id", "attempt", "status", "error", "updated_at"),
        [(t, a, TaskStatus.PENDING, error, now) for t, a in retry],
        "status = v.status, error = v.error, updated_at = v.updated_at",
        sources,
    )
    failed = guarded_update(
        ("id", "attempt", "status", "error", "completed_at", "updated_at"),
        [(t, a, TaskStatus.FAILED, error, now, now) for t, a in final],
        "status = v.status, error = v.error, completed_at = v.completed_at, "
        "updated_at = v.updated_at",
        sources,
    )
    return again, failed


def cancel_lost(attempts: Sequence[tuple[Any, int]], now) -> set[tuple[uuid.UUID, int]]:
    """``queued``/``running`` → ``cancelled``, guarded by attempt: a lost attempt of a task
    an operator asked to stop. Records a ``cancelled`` event per row changed; returns the
    pairs changed."""
    cancelled = guarded_update(
        ("id", "attempt", "status", "completed_at", "updated_at"),
        [(t, a, TaskStatus.CANCELLED, now, now) for t, a in attempts],
        "status = v.status, completed_at = v.completed_at, updated_at = v.updated_at",
        _sources("cancel_lost", [TaskStatus.CANCELLED]),
    )
    reason = "worker lost after a cancel was requested"
    publish_on_commit(
        TaskEvent.objects.bulk_create(
            [
                TaskEvent(
                    task_id=task_id,
                    kind=EventKind.CANCELLED,
                    attempt=attempt,
                    at=now,
                    data={"reason": reason},
                )
                for task_id, attempt in cancelled
            ]
        )
    )
    return cancelled


# -- task rows: operators and the coordinator ------------------------------------------------------
def cancel_waiting(
    ids: Iterable[Any], now: dt.datetime, *, sources: Sequence[str] | None = None
) -> int:
    """``pending``/``queued``/``retrying``/``blocked`` (or the caller's narrower ``sources``)
    → ``cancelled``, any attempt: the caller holds the rows' locks. Returns the count."""
    return Task.objects.filter(
        id__in=list(ids), status__in=_sources("cancel_waiting", [S.CANCELLED], sources)
    ).update(status=TaskStatus.CANCELLED, completed_at=now, updated_at=now)


def cancel_task_now(task: Task, now: dt.datetime) -> None:
    """:func:`cancel_waiting` of one locked row, ``task`` updated to match."""
    if not cancel_waiting([task.id], now, sources=[task.status]):
        raise InvalidTransition(f"task {task.id} is no longer {task.status}")
    task.status, task.completed_at, task.updated_at = TaskStatus.CANCELLED, now, now


def retry(task: Task, now: dt.datetime, *, budget: int) -> None:
    """``failed``/``cancelled`` → ``pending``, any attempt, due now, with ``budget`` fresh
    attempts (max_attempts = attempt + budget) and no cancel request. ``task`` (whose row the
    caller holds locked) is updated to match; InvalidTransition if its row is elsewhere."""
    fields = {
        "status": TaskStatus.PENDING,
        "max_attempts": task.attempt + budget,
        "scheduled_at": now,
        "updated_at": now,
        "completed_at": None,
        "cancel_requested": False,
    }
    changed = Task.objects.filter(
        id=task.id, status__in=_sources("retry", [TaskStatus.PENDING])
    ).update(**fields)
    if not changed:
        raise InvalidTransition(f"task {task.id} is not failed or cancelled")
    for name, value in fields.items():
        setattr(task, name, value)


def retry_many(ids: Iterable[Any], now: dt.datetime) -> int:
    """:func:`retry` of many rows at once (an operator's retry by filter): each
    ``failed``/``cancelled`` row → ``pending``, due now, no cancel request, with as many fresh
    attempts as it had in all (max_attempts = attempt + max_attempts), as a single retry gives
    one task. The caller holds the rows' locks. Returns the count written."""
    return Task.objects.filter(
        id__in=list(ids), status__in=_sources("retry", [TaskStatus.PENDING])
    ).update(
        status=TaskStatus.PENDING,
        max_attempts=F("attempt") + F("max_attempts"),
        scheduled_at=now,
        updated_at=now,
        completed_at=None,
        cancel_requested=False,
    )


def rearm_steps(steps: Sequence[Task], now: dt.datetime) -> int:
    """Any status but ``completed`` → ``blocked``: the steps of a run being retried, their
    deps_remaining and max_attempts already set on the instances by the caller. Returns the
    count written."""
    for step in steps:
        step.status = TaskStatus.BLOCKED
        step.completed_at, step.cancel_requested = None, False
        step.updated_at = step.scheduled_at = now
    sources = _sources("rearm_step", [TaskStatus.BLOCKED])
    return Task.objects.filter(status__in=sources).bulk_update(
        steps,
        [
            "status",
            "deps_remaining",
            "max_attempts",
            "completed_at",
            "cancel_requested",
            "updated_at",
            "scheduled_at",
        ],
    )


def release(steps: Sequence[tuple[Any, int]], now: dt.datetime) -> int:
    """``blocked`` → ``pending``, due now: its dependencies allow it to run. ``steps`` are
    (id, attempt) of rows the caller found blocked in this transaction; each gets its
    ``released`` event. Returns the count written."""
    if not steps:
        return 0
    count = Task.objects.filter(
        id__in=[i for i, _ in steps], status__in=_sources("release", [TaskStatus.PENDING])
    ).update(status=TaskStatus.PENDING, scheduled_at=now, updated_at=now)
    publish_on_commit(
        TaskEvent.objects.bulk_create(
            [TaskEvent(task_id=i, kind=EventKind.RELEASED, attempt=a, at=now) for i, a in steps]
        )
    )
    return count


#: The event :func:`end_blocked` records for each status it writes.
_END_EVENTS = {
    TaskStatus.SKIPPED: EventKind.SKIPPED,
    TaskStatus.COMPLETED: EventKind.COMPLETED,
    TaskStatus.FAILED: EventKind.FAILED,
}


def end_blocked(
    steps: Sequence[tuple[Any, int]], status: str, now: dt.datetime, *, reason: str
) -> int:
    """``blocked`` → ``skipped``/``completed``/``failed`` (``reason`` its error when failed):
    its dependencies did not allow it to run, or its children ended. ``steps`` are (id,
    attempt) of rows the caller found blocked in this transaction; each gets its event (with
    ``reason``). Returns the count written."""
    if not steps:
        return 0
    fields: dict[str, Any] = {"status": status, "completed_at": now, "updated_at": now}
    if status == TaskStatus.FAILED:
        fields["error"] = reason
    count = Task.objects.filter(
        id__in=[i for i, _ in steps], status__in=_sources("end_blocked", [status])
    ).update(**fields)
    publish_on_commit(
        TaskEvent.objects.bulk_create(
            [
                TaskEvent(
                    task_id=i, kind=_END_EVENTS[status], attempt=a, at=now, data={"reason": reason}
                )
                for i, a in steps
            ]
        )
    )
    return count


# -- workflow runs -------------------------------------------------------------------------------
def move_run(run: WorkflowRun, name: str, to: str, now: dt.datetime, **fields: Any) -> None:
    """Run transition ``name``: ``run`` (whose row the caller holds locked) → ``to``, with
    ``fields`` written beside it; guarded by the table's from-statuses. InvalidTransition when
    the row is in none of them."""
    transition = RUN_TRANSITIONS[name]
    if to not in transition.targets:
        raise ValueError(f"{name} cannot move a workflow run to {to}")
    if name == "finish" and to not in RUN_FINISHES.get(run.status, ()):
        raise InvalidTransition(f"workflow run {run.id} is {run.status}: it cannot end {to}")
    values = {"status": to, "updated_at": now, **fields}
    changed = WorkflowRun.objects.filter(id=run.id, status__in=transition.sources).update(**values)
    if not changed:
        raise InvalidTransition(f"workflow run {run.id} is {run.status}: no {name}")
    for field, value in values.items():
        setattr(run, field, value)
