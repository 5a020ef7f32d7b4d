"""Operator actions by filter: retry, cancel or delete every task a filter matches.

The admin, the API and the command line all call :func:`run`. It counts first (and refuses, with
nothing changed, when the caller expected another count), then acts in batches of
``BULK_ACTION_BATCH`` rows, each its own short transaction, so millions of rows never make one
giant transaction or hold locks the workers need. Each batch acts only on the rows whose status
allows the action — the rules of the single-task services in ``services.py`` — through the same
transitions, with the same events; the rest of what matched is counted as skipped. One audit
record per action holds the filter, the counts and the actor.

The rows are visited once each, in primary-key order, and only those created by the time the
count was taken (``as_of``): a task retried by the action that fails again meanwhile is not
retried twice, and rows created during the action are not what the operator counted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from ..conf import taskhub_settings
from ..engine import claims, transitions
from ..engine.broker import wake_dispatcher
from ..engine.events import publish_on_commit
from ..errors import InvalidTransition
from ..models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    DeadLetter,
    EventKind,
    Task,
    TaskEvent,
    TaskStatus,
)
from ..workflows.coordinator import settle
from .audit import actor_name, record
from .roles import ADMIN, OPERATOR
from .services import WAITING_STATUSES
from .task_filters import describe

#: The built-in task that runs a bulk action too large for a request (bulk_jobs.py). A bulk retry
#: never retries one: "retry every failed task" must not run again an old delete by filter.
BULK_ACTION_TASK = "taskhub.bulk_action"

#: The actions, each with the role it needs (``roles.py``).
ACTIONS = {"retry": OPERATOR, "cancel": OPERATOR, "delete": ADMIN}

#: Which of the matched rows each action may touch, in words (for confirmations and docs).
RULES = {
    "retry": "failed or cancelled tasks that are not workflow steps (those are retried with "
    "their run) nor bulk actions run as tasks (each of those is retried on its own)",
    "cancel": "waiting, queued, retrying and blocked tasks, cancelled now, and running ones, "
    "asked to stop (unless already asked)",
    "delete": "finished tasks that are not workflow steps, whose parent and spawned tasks have "
    "all finished too",
}

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BulkCount:
    """What a filter matches now, and how many of those rows the action may touch."""

    matched: int
    eligible: int
    as_of: dt.datetime


@dataclass(frozen=True)
class BulkResult:
    matched: int
    eligible: int
    acted: int
    skipped: int

    def as_dict(self) -> dict[str, int]:
        return {
            "matched": self.matched,
            "eligible": self.eligible,
            "acted": self.acted,
            "skipped": self.skipped,
        }


class CountChanged(InvalidTransition):
    """The filter matches another number of tasks than the caller confirmed; nothing changed."""

    def __init__(self, expected: int, matched: int) -> None:
        super().__init__(
            f"the filter now matches {matched} tasks, not the {expected} expected: "
            "nothing was changed; check the count and confirm again"
        )
        self.expected, self.matched = expected, matched


def _check(action: str) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown bulk action {action!r}; one of {', '.join(ACTIONS)}")


def eligible(action: str, tasks: QuerySet[Task]) -> QuerySet[Task]:
    """The rows of ``tasks`` whose status allows ``action`` (see :data:`RULES`)."""
    _check(action)
    if action == "retry":
        return tasks.filter(
            status__in=(TaskStatus.FAILED, TaskStatus.CANCELLED), workflow_run__isnull=True
        ).exclude(name=BULK_ACTION_TASK)
    if action == "cancel":
        return tasks.filter(
            Q(status__in=WAITING_STATUSES) | Q(status=TaskStatus.RUNNING, cancel_requested=False)
        )
    live_child = Task.objects.filter(parent_id=OuterRef("pk"), status__in=ACTIVE_STATUSES)
    return tasks.filter(
        Q(parent__isnull=True) | Q(parent__status__in=FINISHED_STATUSES),
        ~Exists(live_child),
        status__in=FINISHED_STATUSES,
        workflow_run__isnull=True,
    )


def count(action: str, tasks: QuerySet[Task], *, as_of: dt.datetime | None = None) -> BulkCount:
    """How many tasks ``tasks`` matches (created by ``as_of``, default now), and how many of
    them ``action`` may touch. Two COUNT queries; nothing changes."""
    as_of = as_of or timezone.now()
    tasks = tasks.filter(created_at__lte=as_of)
    return BulkCount(tasks.count(), eligible(action, tasks).count(), as_of)


def checked_count(
    action: str,
    tasks: QuerySet[Task],
    *,
    expected_count: int | None = None,
    as_of: dt.datetime | None = None,
) -> BulkCount:
    """:func:`count`, refused with :class:`CountChanged` when the caller expected another."""
    counted = count(action, tasks, as_of=as_of)
    if expected_count is not None and expected_count != counted.matched:
        raise CountChanged(expected_count, counted.matched)
    return counted


def run(
    action: str,
    tasks: QuerySet[Task],
    *,
    user: Any,
    source: str,
    filters: dict[str, Any],
    expected_count: int | None = None,
    as_of: dt.datetime | None = None,
    batch: int | None = None,
    progress: Progress | None = None,
    counted: BulkCount | None = None,
) -> BulkResult:
    """Apply ``action`` (retry, cancel, delete) to every task of ``tasks`` whose status allows
    it, in batches, and record it once in the audit log (``filters``, the filter as the caller
    received it, kept by :func:`~taskhub.console.task_filters.describe`; the counts; ``user``
    and ``source``).

    ``expected_count``: the count the operator confirmed; another count raises
    :class:`CountChanged` and changes nothing. ``as_of``: when that count was taken (rows
    created later are left alone). ``counted``: a :func:`checked_count` the caller took just
    before (then neither is taken again). ``progress(visited, matched)`` is called after each
    batch. An action stopped by an error keeps the batches it committed, and its audit record
    says so.
    """
    if counted is None:
        counted = checked_count(action, tasks, expected_count=expected_count, as_of=as_of)
    actor = actor_name(user) or source
    acted = 0

    def audit(**extra: Any) -> None:
        record(
            user,
            f"task.bulk_{action}",
            source=source,
            target_type="task",
            filter=describe(filters),
            matched=counted.matched,
            eligible=counted.eligible,
            acted=acted,
            skipped=max(counted.matched - acted, 0),
            **extra,
        )

    try:
        visited = 0
        for ids in _pages(tasks.filter(created_at__lte=counted.as_of), _batch_size(batch)):
            with transaction.atomic():
                acted += _ACT[action](eligible(action, tasks).filter(id__in=ids), actor)
            visited += len(ids)
            if progress is not None:
                progress(visited, counted.matched)
    except Exception as exc:
        audit(interrupted=f"{type(exc).__name__}: {exc}")
        raise
    audit()
    return BulkResult(counted.matched, counted.eligible, acted, max(counted.matched - acted, 0))


def _batch_size(batch: int | None) -> int:
    return max(1, int(batch or taskhub_settings.BULK_ACTION_BATCH))


def _pages(tasks: QuerySet[Task], size: int) -> Iterator[list]:
    """The ids of ``tasks`` in primary-key order, ``size`` at a time: each row once, however the
    action changes the rows already visited."""
    last = None
    while True:
        page = tasks.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        ids = list(page.values_list("pk", flat=True)[:size])
        if not ids:
            return
        yield ids
        last = ids[-1]


def _locked(rows: QuerySet[Task], *fields: str) -> list[tuple]:
    # Rows another transaction holds (a worker writing an outcome) are skipped, not waited for:
    # no deadlock with the outcome writer, and the row is counted as skipped.
    return list(
        rows.select_for_update(skip_locked=True, of=("self",)).order_by().values_list("id", *fields)
    )


def _events(rows: list[tuple], kind: str, data: Any, now: dt.datetime) -> None:
    """One event per (id, attempt, …) row; ``data`` is a dict, or a function of the row."""
    publish_on_commit(
        TaskEvent.objects.bulk_create(
            [
                TaskEvent(
                    task_id=row[0],
                    kind=kind,
                    attempt=row[1],
                    at=now,
                    data=data(row) if callable(data) else data,
                )
                for row in rows
            ]
        )
    )


def _retry(rows: QuerySet[Task], actor: str) -> int:
    """services.retry_task for a batch: a fresh budget, dead letters resolved, ``requeued``."""
    locked = _locked(rows, "attempt", "max_attempts", "queue")
    if not locked:
        return 0
    now = timezone.now()
    ids = [row[0] for row in locked]
    changed = transitions.retry_many(ids, now)
    DeadLetter.objects.filter(task_id__in=ids).delete()
    data = lambda row: {"by": actor, "attempts_added": row[2], "bulk": True}  # noqa: E731
    _events(locked, EventKind.REQUEUED, data, now)
    queues = sorted({row[3] for row in locked})
    transaction.on_commit(lambda: wake_dispatcher(*queues))
    return changed


def _cancel(rows: QuerySet[Task], actor: str) -> int:
    """services.cancel_task for a batch: waiting rows cancelled now (and what depends on them
    settled), running ones asked to stop at their next checkpoint."""
    locked = _locked(rows, "attempt", "status")
    if not locked:
        return 0
    now = timezone.now()
    data = {"by": actor, "bulk": True}
    waiting = [row for row in locked if row[2] != TaskStatus.RUNNING]
    running = [row for row in locked if row[2] == TaskStatus.RUNNING]
    if waiting:
        transitions.cancel_waiting([row[0] for row in waiting], now, sources=WAITING_STATUSES)
        _events(waiting, EventKind.CANCELLED, data, now)
        settle([row[0] for row in waiting], now=now)
    if running:
        # Not a status write: the running attempt sees the request and ends itself cancelled.
        Task.objects.filter(id__in=[row[0] for row in running]).update(
            cancel_requested=True, updated_at=now
        )
        _events(running, EventKind.CANCEL_REQUESTED, data, now)
    flags = [(str(row[0]), row[1]) for row in locked]
    transaction.on_commit(lambda: claims.set_cancel_flags(flags))
    return len(locked)


def _delete(rows: QuerySet[Task], actor: str) -> int:
    """services.delete_task for a batch: the rows with their history (events, logs, dead
    letters) and the tasks they spawned, once none of those is still live."""
    ids = [row[0] for row in _locked(rows)]
    ids = [i for i in ids if i not in _with_live_descendants(ids)]
    if not ids:
        return 0
    Task.objects.filter(id__in=ids).delete()
    return len(ids)


def _with_live_descendants(ids: list) -> set:
    """Those of ``ids`` that have a task spawned under them, at any depth, that has not finished
    (deleting a task deletes what it spawned: a live one must not go with it)."""
    root_of = {i: i for i in ids}
    frontier, live = list(ids), set()
    while frontier:
        found = Task.objects.filter(parent_id__in=frontier).values_list("id", "parent_id", "status")
        frontier = []
        for child, parent, status in found:
            if child in root_of:
                continue
            root_of[child] = root_of[parent]
            if status not in FINISHED_STATUSES:
                live.add(root_of[child])
            frontier.append(child)
    return live


_ACT: dict[str, Callable[[QuerySet[Task], str], int]] = {
    "retry": _retry,
    "cancel": _cancel,
    "delete": _delete,
}
