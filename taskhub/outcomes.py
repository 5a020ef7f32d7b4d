"""The worker's outcome writer: buffers starts, progress, logs and outcomes, and writes them in
one transaction every few milliseconds.

Status writes dominate the cost of a task, so they are batched (DESIGN.md). The price is a
short delay before the database shows an outcome, and it is kept honest: an attempt running
longer than RUNNING_WRITE_AFTER_MS is written as ``running``; every write is guarded by attempt,
so only one outcome is ever recorded; if the database is away, nothing is dropped — the buffer
is retried until it lands.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    close_old_connections,
    connection,
    transaction,
)
from django.utils import timezone

from . import signals
from .broker import wake_dispatcher
from .conf import taskhub_settings
from .events import publish_on_commit
from .models import DeadLetter, EventKind, TaskLog, TaskStatus
from .store import NewEvent, guarded_update, insert_events
from .workflows.children import insert_children
from .workflows.coordinator import settle

logger = logging.getLogger(__name__)

AttemptKey = tuple[str, int]


@dataclass
class StartedAttempt:
    task_id: str
    attempt: int
    started_at: dt.datetime
    monotonic: float
    written: bool = False


@dataclass(kw_only=True)
class Outcome:
    """How one attempt ended, as the writer will record it."""

    task_id: str
    attempt: int
    name: str
    queue: str
    status: TaskStatus  # completed | retrying | failed | cancelled | pending (handed back)
    started_at: dt.datetime | None
    finished_at: dt.datetime
    duration: float | None = None
    result: Any = None
    error: str = ""
    traceback: str = ""
    retry_at: dt.datetime | None = None
    payload: dict = field(default_factory=dict)
    event_data: dict = field(default_factory=dict)
    #: the attempt's start record, to know whether its "started" event was already written
    start: StartedAttempt | None = None
    #: child task rows spawned by the handler (status ``blocked`` until they end)
    children: list = field(default_factory=list)
    #: a workflow step or a child (the dispatcher says so; unknown counts as yes)
    coordinated: bool = True
    #: handed to the writer already (OutcomeWriter.record_outcome)
    recorded: bool = field(default=False, compare=False, repr=False)


_FINISH_COLUMNS = (
    "id", "attempt", "status", "result", "error", "traceback", "started_at",
    "completed_at", "duration", "scheduled_at", "progress", "worker_id", "updated_at",
)  # fmt: skip
_FINISH_SET = (
    "status = v.status, result = v.result, error = v.error, traceback = v.traceback, "
    "started_at = v.started_at, completed_at = v.completed_at, duration = v.duration, "
    "scheduled_at = COALESCE(v.scheduled_at, {t}.scheduled_at), "
    "progress = COALESCE(v.progress, {t}.progress), worker_id = v.worker_id, "
    "updated_at = v.updated_at"
)
_START_SET = (
    "status = v.status, started_at = v.started_at, worker_id = v.worker_id, "
    "updated_at = v.updated_at"
)
# Handing an attempt back (queue paused, worker shutting down, claim unsettled): it never
# finished. Its number stays used (the next dispatch is a new attempt, so a thread still running
# this one can never pass for it) and the attempt is not charged: the limit moves up with it.
_RELEASE_SET = (
    "status = v.status, max_attempts = {t}.max_attempts + 1, started_at = NULL, "
    "scheduled_at = COALESCE(v.scheduled_at, {t}.scheduled_at), updated_at = v.updated_at"
)
_PROGRESS_SET = "progress = v.progress, updated_at = v.updated_at"

_OUTCOME_EVENTS = {
    TaskStatus.COMPLETED: EventKind.COMPLETED,
    TaskStatus.RETRYING: EventKind.RETRYING,
    TaskStatus.FAILED: EventKind.FAILED,
    TaskStatus.CANCELLED: EventKind.CANCELLED,
    TaskStatus.PENDING: EventKind.RECOVERED,
    TaskStatus.BLOCKED: EventKind.BLOCKED,
}


_FINAL = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)
_STARTED_FROM = [TaskStatus.QUEUED, TaskStatus.RUNNING]
#: Outcomes that would send a task round again or fail it: a cancel request overrides them.
_OVERRIDDEN_BY_CANCEL = (TaskStatus.RETRYING, TaskStatus.FAILED, TaskStatus.PENDING)


def _honour_cancel_requests(outcomes: list[Outcome]) -> list[Outcome]:
    """An operator asked these running tasks to stop: whatever the handler then did — failed,
    timed out, was handed back — the task ends ``cancelled``, never ``retrying`` (its next
    attempt would run a task the operator cancelled). A handler that returned normally after
    seeing the request already reported ``cancelled``; one that completed without looking keeps
    its result. The rows are locked so a cancel can't land between this read and the write."""
    from .models import Task

    candidates = {o.task_id for o in outcomes if o.status in _OVERRIDDEN_BY_CANCEL}
    if not candidates:
        return outcomes
    requested = {
        str(i)
        for i in Task.objects.select_for_update()
        .filter(id__in=candidates, cancel_requested=True)
        .values_list("id", flat=True)
    }
    if not requested:
        return outcomes
    return [
        _as_cancelled(o) if o.status in _OVERRIDDEN_BY_CANCEL and o.task_id in requested else o
        for o in outcomes
    ]


def _as_cancelled(o: Outcome) -> Outcome:
    started_at = o.started_at or (o.start.started_at if o.start is not None else None)
    data = {"reason": "cancel requested", **({"error": o.error} if o.error else {})}
    return dataclasses.replace(
        o, status=TaskStatus.CANCELLED, started_at=started_at, retry_at=None, event_data=data
    )


class OutcomeWriter:
    """One per worker process; thread-safe; flushed by its own thread."""

    def __init__(self, worker_id: str):
        self.worker_id = worker_id
        self._lock = threading.Lock()
        self._started: dict[AttemptKey, StartedAttempt] = {}
        self._outcomes: list[Outcome] = []
        self._progress: dict[AttemptKey, int] = {}
        self._logs: list[TaskLog] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0

    # -- recording (handler threads) ---------------------------------------------------------
    def record_start(self, task_id: str, attempt: int) -> StartedAttempt:
        started = StartedAttempt(task_id, attempt, timezone.now(), time.monotonic())
        with self._lock:
            self._started[(task_id, attempt)] = started
        return started

    def record_outcome(self, outcome: Outcome) -> None:
        with self._lock:
            # The same outcome again (a recording interrupted after it was buffered, then
            # retried: taskhub.worker) is written once.
            if not outcome.recorded:
                outcome.recorded = True
                self._outcomes.append(outcome)

    def record_progress(self, task_id: str, attempt: int, value: int) -> None:
        with self._lock:
            self._progress[(task_id, attempt)] = value

    def record_log(self, task_id: str, attempt: int, level: str, message: str) -> None:
        row = TaskLog(
            task_id=task_id, attempt=attempt, level=level, message=message, at=timezone.now()
        )
        with self._lock:
            self._logs.append(row)

    def hand_back_unfinished(self, reason: str) -> list[AttemptKey]:
        """Record every started-but-unfinished attempt as handed back (pending again)."""
        now = timezone.now()
        with self._lock:
            unfinished = list(self._started.values())
            self._started.clear()
            for s in unfinished:
                self._outcomes.append(Outcome(
                    task_id=s.task_id, attempt=s.attempt, name="", queue="",
                    status=TaskStatus.PENDING, started_at=None, finished_at=now, start=s,
                    event_data={"reason": reason},
                ))  # fmt: skip
        return [(s.task_id, s.attempt) for s in unfinished]

    def in_flight(self) -> list[AttemptKey]:
        with self._lock:
            return list(self._started)

    # -- flushing (writer thread) -------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="taskhub-outcomes", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Flush everything still buffered (retrying through a short outage), then stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while self._has_work() and time.monotonic() < deadline:
            if not self.flush():
                time.sleep(0.5)

    def _run(self) -> None:
        interval = taskhub_settings.FLUSH_INTERVAL_MS / 1000
        while not self._stop.is_set():
            ok = self.flush()
            # Back off while the database is away; keep everything buffered meanwhile.
            delay = interval if ok else min(5.0, interval * 2 ** min(self._failures, 8))
            self._stop.wait(delay)
        close_old_connections()

    def _has_work(self) -> bool:
        with self._lock:
            return bool(
                self._outcomes
                or self._progress
                or self._logs
                or any(not s.written for s in self._started.values())
            )

    def _take(self) -> tuple[list[StartedAttempt], list[Outcome], dict, list[TaskLog]]:
        threshold = taskhub_settings.RUNNING_WRITE_AFTER_MS / 1000
        now = time.monotonic()
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
            progress, self._progress = self._progress, {}
            logs, self._logs = self._logs, []
            starts = [
                s for k, s in self._started.items()
                if not s.written and (now - s.monotonic >= threshold or k in progress)
            ]  # fmt: skip
            for o in outcomes:
                self._started.pop((o.task_id, o.attempt), None)
        return starts, outcomes, progress, logs

    def _put_back(self, outcomes: list[Outcome], progress: dict, logs: list[TaskLog]) -> None:
        with self._lock:
            self._outcomes[:0] = outcomes
            for k, v in progress.items():
                self._progress.setdefault(k, v)
            self._logs[:0] = logs

    def flush(self) -> bool:
        """Write what is buffered in one transaction; False if the database refused."""
        starts, outcomes, progress, logs = self._take()
        if not (starts or outcomes or progress or logs):
            return True
        try:
            with transaction.atomic():
                written_starts = self._write_starts(starts)
                self._write_progress(progress)
                finished = self._write_outcomes(outcomes, written_starts)
                TaskLog.objects.bulk_create(logs)
                # Workflow steps and parents: their dependents are resolved in this same
                # transaction, so an outcome and its consequences land together or not at all.
                settle(o.task_id for o in finished if o.status in _FINAL and o.coordinated)
        except Exception as exc:  # noqa: BLE001 — this thread must outlive any error
            # Nothing is dropped: the batch goes back and is tried again (with back-off).
            if not isinstance(exc, DatabaseError | InterfaceError):
                logger.exception("unexpected error flushing outcomes")
            self._failures += 1
            logger.warning(
                "outcome flush failed (%s), keeping %d outcomes buffered: %s",
                self._failures,
                len(outcomes),
                exc,
            )
            if isinstance(exc, IntegrityError):
                # A task deleted while this worker still held its logs would fail every flush
                # from now on (the logs' foreign key): drop what belongs to deleted tasks only.
                logs = self._of_existing_tasks(logs)
            self._put_back(outcomes, progress, logs)
            connection.close_if_unusable_or_obsolete()
            return False
        self._failures = 0
        for s in starts:
            s.written = True
        if outcomes:
            # Slots freed: the dispatcher refills exactly these queues (and spawned children's).
            queues = {o.queue or "*" for o in outcomes}
            wake_dispatcher(*queues.union(*({c.queue for c in o.children} for o in outcomes)))
        finished = [o for o in finished if o.status != TaskStatus.BLOCKED]
        if finished:
            signals.tasks_finished.send_robust(sender=OutcomeWriter, outcomes=finished)
        return True

    @staticmethod
    def _of_existing_tasks(logs: list[TaskLog]) -> list[TaskLog]:
        from .models import Task

        try:
            existing = {
                str(i)
                for i in Task.objects.filter(id__in={str(r.task_id) for r in logs}).values_list(
                    "id", flat=True
                )
            }
        except (DatabaseError, InterfaceError):
            return logs
        kept = [r for r in logs if str(r.task_id) in existing]
        if len(kept) < len(logs):
            logger.warning("dropped %d log lines of deleted tasks", len(logs) - len(kept))
        return kept

    def _write_starts(self, starts: list[StartedAttempt]) -> set[tuple[uuid.UUID, int]]:
        if not starts:
            return set()
        now = timezone.now()
        rows = [
            (s.task_id, s.attempt, TaskStatus.RUNNING, s.started_at, self.worker_id, now)
            for s in starts
        ]
        changed = guarded_update(
            ("id", "attempt", "status", "started_at", "worker_id", "updated_at"),
            rows, _START_SET, [TaskStatus.QUEUED],
        )  # fmt: skip
        publish_on_commit(insert_events([
            NewEvent(s.task_id, EventKind.STARTED, s.attempt, s.started_at,
                     {"worker": self.worker_id})
            for s in starts if (uuid.UUID(s.task_id), s.attempt) in changed
        ]))  # fmt: skip
        return changed

    def _write_progress(self, progress: dict[AttemptKey, int]) -> None:
        if not progress:
            return
        now = timezone.now()
        rows = [(t, a, p, now) for (t, a), p in progress.items()]
        changed = guarded_update(
            ("id", "attempt", "progress", "updated_at"), rows, _PROGRESS_SET, [TaskStatus.RUNNING]
        )
        publish_on_commit(insert_events([
            NewEvent(t, EventKind.PROGRESS, a, now, {"progress": p})
            for (t, a), p in progress.items() if (uuid.UUID(t), a) in changed
        ]))  # fmt: skip

    def _write_outcomes(self, outcomes: list[Outcome], written_starts: set) -> list[Outcome]:
        outcomes = _honour_cancel_requests(outcomes)
        finishing = [o for o in outcomes if o.status != TaskStatus.PENDING]
        releasing = [o for o in outcomes if o.status == TaskStatus.PENDING]
        now = timezone.now()
        changed = guarded_update(
            _FINISH_COLUMNS,
            [self._finish_row(o, now) for o in finishing],
            _FINISH_SET,
            [TaskStatus.QUEUED, TaskStatus.RUNNING],
        )
        # An attempt that never started here is handed back only while its row is still queued:
        # if the row says running, someone else holds the attempt.
        for unstarted, statuses in ((False, _STARTED_FROM), (True, [TaskStatus.QUEUED])):
            changed |= guarded_update(
                ("id", "attempt", "status", "scheduled_at", "updated_at"),
                [(o.task_id, o.attempt, TaskStatus.PENDING, o.retry_at, now) for o in releasing
                 if (o.start is None) == unstarted],
                _RELEASE_SET,
                statuses,
            )  # fmt: skip
        applied = [o for o in outcomes if (uuid.UUID(o.task_id), o.attempt) in changed]
        events, dead = [], []
        started = {"worker": self.worker_id}
        for o in applied:
            key = (uuid.UUID(o.task_id), o.attempt)
            start_written = key in written_starts or (o.start is not None and o.start.written)
            if o.started_at is not None and not start_written:
                events.append(
                    NewEvent(o.task_id, EventKind.STARTED, o.attempt, o.started_at, started)
                )
            events.append(
                NewEvent(o.task_id, _OUTCOME_EVENTS[o.status], o.attempt, o.finished_at,
                         o.event_data)
            )  # fmt: skip
            if o.status == TaskStatus.FAILED:
                events.append(
                    NewEvent(o.task_id, EventKind.DEAD_LETTERED, o.attempt, o.finished_at)
                )
                dead.append(
                    DeadLetter(
                        task_id=o.task_id,
                        task_name=o.name,
                        queue=o.queue,
                        payload=o.payload,
                        error=o.error,
                        traceback=o.traceback,
                        attempts=o.attempt,
                        created_at=o.finished_at,
                    )
                )
        publish_on_commit(insert_events(events))
        DeadLetter.objects.bulk_create(dead)
        insert_children(
            [(o.task_id, o.attempt, o.children) for o in applied if o.status == TaskStatus.BLOCKED],
            now,
        )
        return [o for o in applied if o.status != TaskStatus.PENDING]

    def _finish_row(self, o: Outcome, now: dt.datetime) -> tuple:
        unfinished = o.status in (TaskStatus.RETRYING, TaskStatus.BLOCKED)
        completed_at = None if unfinished else o.finished_at
        progress = 100 if o.status == TaskStatus.COMPLETED else None
        result = json.loads(json.dumps(o.result)) if o.result is not None else None
        return (
            o.task_id,
            o.attempt,
            o.status,
            result,
            o.error,
            o.traceback,
            o.started_at,
            completed_at,
            o.duration,
            o.retry_at,
            progress,
            self.worker_id,
            now,
        )
