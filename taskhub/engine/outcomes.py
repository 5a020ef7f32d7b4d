"""The worker's outcome writer: buffers starts, progress, logs and outcomes, and writes them in
one transaction every few milliseconds.

Status writes dominate the cost of a task, so they are batched. The price is a
short delay before the database shows an outcome, and it is kept honest: an attempt running
longer than RUNNING_WRITE_AFTER_MS is written as ``running``; every write is guarded by attempt,
so only one outcome is ever recorded; if the database is away, nothing is dropped — the buffer
is retried until it lands.

What handlers produce is made storable when it is recorded (taskhub.safety.storable). Should the
database still refuse a batch for what is in it, each task's part is written on its own and the
part at fault is recorded without what was refused — one record never holds up the others. A
writer that leaves something unwritten longer than LIFELINE_TIMEOUT reports itself stuck to the
health probes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    close_old_connections,
    connection,
    transaction,
)
from django.db import Error as DatabaseLayerError  # DatabaseError's base, and InterfaceError's
from django.utils import timezone

from ..conf import taskhub_settings
from ..models import DeadLetter, EventKind, Task, TaskLog, TaskStatus
from ..safety.storable import storable_json, storable_text
from . import hooks, signals, transitions
from .broker import get_redis, key, wake_dispatcher
from .events import publish_on_commit
from .store import NewEvent, guarded_update, insert_events

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
#: Outcomes that would send a task round again or fail it: a cancel request overrides them.
_OVERRIDDEN_BY_CANCEL = (TaskStatus.RETRYING, TaskStatus.FAILED, TaskStatus.PENDING)


def _honour_cancel_requests(outcomes: list[Outcome]) -> list[Outcome]:
    """An operator asked these running tasks to stop: whatever the handler then did — failed,
    timed out, was handed back — the task ends ``cancelled``, never ``retrying`` (its next
    attempt would run a task the operator cancelled). A handler that returned normally after
    seeing the request already reported ``cancelled``; one that completed without looking keeps
    its result. The rows are locked so a cancel can't land between this read and the write."""
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


def storable_outcome(outcome: Outcome) -> Outcome:
    """``outcome`` with what the handler produced — result, error, traceback, event data —
    made storable (taskhub.safety.storable); the same object when nothing needed it."""
    result = storable_json(outcome.result)
    error, trace = storable_text(outcome.error), storable_text(outcome.traceback)
    event_data = storable_json(outcome.event_data)
    # The storable_* functions return their argument itself when it needed nothing.
    made = (result, error, trace, event_data)
    given = (outcome.result, outcome.error, outcome.traceback, outcome.event_data)
    if all(m is g for m, g in zip(made, given, strict=True)):
        return outcome
    return dataclasses.replace(
        outcome, result=result, error=error, traceback=trace, event_data=event_data
    )


def unstorable_outcome(outcome: Outcome, refusal: BaseException) -> Outcome:
    """What is recorded instead of an outcome the database refused: the attempt's result,
    error text and children are left out, and the refusal becomes the task's error. A result
    that was lost makes the task failed (retrying cannot bring it back); a retry, a cancel or a
    hand-back keeps its status."""
    error = storable_text(
        f"the database refused what this attempt recorded ({type(refusal).__name__}: "
        f"{refusal}); its result and error text were not stored"
    )
    status, event_data = outcome.status, {"error": error}
    if status in (TaskStatus.COMPLETED, TaskStatus.BLOCKED, TaskStatus.FAILED):
        status, event_data = TaskStatus.FAILED, {"error": error, "permanent": True}
    elif status == TaskStatus.RETRYING and outcome.retry_at is not None:
        event_data["retry_at"] = outcome.retry_at.isoformat()
    elif status == TaskStatus.PENDING:
        error, event_data = "", outcome.event_data
    return dataclasses.replace(
        outcome,
        status=status,
        result=None,
        error=error,
        traceback="",
        children=[],
        event_data=storable_json(event_data),
        payload=storable_json(outcome.payload),
    )


def _unstorable_logs(logs: list[TaskLog], refusal: BaseException) -> list[TaskLog]:
    """One line saying the task's log lines of this flush were refused, instead of them."""
    if not logs:
        return []
    first = logs[0]
    message = storable_text(
        f"{len(logs)} log lines were not stored: the database refused them "
        f"({type(refusal).__name__}: {refusal})"
    )
    row = TaskLog(task_id=first.task_id, attempt=first.attempt, level="ERROR", at=first.at)
    row.message = message
    return [row]


def writer_health_key(worker_id: str) -> str:
    return key("worker", "writer", worker_id)


def writer_health(worker_ids: list[str]) -> dict[str, dict | None]:
    """What each worker's outcome writer last reported (:meth:`OutcomeWriter.health`), None
    for a worker that has not reported within LIFELINE_TIMEOUT."""
    if not worker_ids:
        return {}
    values = get_redis().mget([writer_health_key(w) for w in worker_ids])
    return {w: (json.loads(v) if v else None) for w, v in zip(worker_ids, values, strict=True)}


def stuck_writers(worker_ids: list[str]) -> list[dict[str, Any]]:
    """The workers among ``worker_ids`` whose outcome writer reports itself stuck: they run
    tasks whose outcomes do not reach the database (so their slots are never freed)."""
    return [
        {"worker": worker_id, **health}
        for worker_id, health in writer_health(worker_ids).items()
        if health is not None and health.get("status") == "stuck"
    ]


@dataclass
class Batch:
    """What one flush writes: attempts to show as running, outcomes, progress and log lines."""

    starts: list[StartedAttempt] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    progress: dict[AttemptKey, int] = field(default_factory=dict)
    logs: list[TaskLog] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.starts or self.outcomes or self.progress or self.logs)

    def task_ids(self) -> list[str]:
        ids = [str(r.task_id) for r in (*self.starts, *self.outcomes, *self.logs)]
        return sorted(set(ids) | {str(t) for t, _ in self.progress})

    def by_task(self) -> list[Batch]:
        """The batch split into one batch per task, in the order tasks first appear."""
        parts: dict[str, Batch] = {}
        for s in self.starts:
            parts.setdefault(str(s.task_id), Batch()).starts.append(s)
        for o in self.outcomes:
            parts.setdefault(str(o.task_id), Batch()).outcomes.append(o)
        for (task_id, attempt), value in self.progress.items():
            parts.setdefault(str(task_id), Batch()).progress[(task_id, attempt)] = value
        for row in self.logs:
            parts.setdefault(str(row.task_id), Batch()).logs.append(row)
        return list(parts.values())

    @staticmethod
    def joined(parts: Iterable[Batch]) -> Batch:
        whole = Batch()
        for part in parts:
            whole.starts += part.starts
            whole.outcomes += part.outcomes
            whole.progress.update(part.progress)
            whole.logs += part.logs
        return whole


def is_outage(exc: BaseException) -> bool:
    """True unless the database refused what was written: a refusal (a value it cannot store,
    a row that no longer exists — DataError, IntegrityError — or a value the driver cannot even
    send) fails the same way every time, so only the record at fault may be set aside.
    Everything else may pass later as it is — the database away, busy or deadlocked, or a
    schema a deploy has not migrated yet — and nothing of it is dropped.
    """
    from_database = isinstance(exc, DatabaseLayerError)
    refused = isinstance(exc, DataError | IntegrityError) or not from_database
    if not refused:
        return True
    try:
        return not connection.is_usable()
    except Exception:  # noqa: BLE001 — cannot even ask: treat as away
        return True


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
        self._last_error = ""
        # Monotonic time of the oldest outcome, progress or log line still unwritten (None when
        # there is none): how far behind the database is, reported by health().
        self._pending_since: float | None = None

    # -- recording (handler threads) ---------------------------------------------------------
    def record_start(self, task_id: str, attempt: int) -> StartedAttempt:
        started = StartedAttempt(task_id, attempt, timezone.now(), time.monotonic())
        with self._lock:
            self._started[(task_id, attempt)] = started
        return started

    def record_outcome(self, outcome: Outcome) -> None:
        storable = storable_outcome(outcome)
        with self._lock:
            # The same outcome again (a recording interrupted after it was buffered, then
            # retried: taskhub.engine.worker) is written once.
            if not outcome.recorded:
                outcome.recorded = True
                self._outcomes.append(storable)
                self._note_pending()

    def record_progress(self, task_id: str, attempt: int, value: int) -> None:
        with self._lock:
            self._progress[(task_id, attempt)] = value
            self._note_pending()

    def record_log(self, task_id: str, attempt: int, level: str, message: str) -> None:
        row = TaskLog(
            task_id=task_id,
            attempt=attempt,
            level=level,
            message=storable_text(message),
            at=timezone.now(),
        )
        with self._lock:
            self._logs.append(row)
            self._note_pending()

    def _note_pending(self) -> None:
        # Called with the lock held.
        if self._pending_since is None:
            self._pending_since = time.monotonic()

    def hand_back_unfinished(self, reason: str) -> list[AttemptKey]:
        """Record every started-but-unfinished attempt as handed back (pending again)."""
        now = timezone.now()
        with self._lock:
            unfinished = list(self._started.values())
            self._started.clear()
            for s in unfinished:
                self._outcomes.append(
                    Outcome(
                        task_id=s.task_id,
                        attempt=s.attempt,
                        name="",
                        queue="",
                        status=TaskStatus.PENDING,
                        started_at=None,
                        finished_at=now,
                        start=s,
                        event_data={"reason": reason},
                    )
                )
            if unfinished:
                self._note_pending()
        return [(s.task_id, s.attempt) for s in unfinished]

    def in_flight(self) -> list[AttemptKey]:
        with self._lock:
            return list(self._started)

    # -- health (any thread) -------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Whether this writer keeps up: ``stuck`` once something recorded has waited longer
        than LIFELINE_TIMEOUT to be written (the database away, or the writer wedged) — the
        bound after which the lifeline gives up on a silent worker too."""
        now = time.monotonic()
        with self._lock:
            since = self._pending_since
            buffered = len(self._outcomes) + len(self._progress) + len(self._logs)
        unflushed_for = 0.0 if since is None else now - since
        stuck = unflushed_for > taskhub_settings.LIFELINE_TIMEOUT
        return {
            "status": "stuck" if stuck else "ok",
            "unflushed_for": round(unflushed_for, 1),
            "buffered": buffered,
            "failed_flushes": self._failures,
            "last_error": self._last_error[:300],
        }

    def publish_health(self) -> None:
        """Put :meth:`health` where probes read it (Redis, expiring with the liveness key)."""
        get_redis().set(
            writer_health_key(self.worker_id),
            json.dumps(self.health()),
            ex=max(1, int(taskhub_settings.LIFELINE_TIMEOUT)),
        )

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

    def _take(self) -> Batch:
        threshold = taskhub_settings.RUNNING_WRITE_AFTER_MS / 1000
        now = time.monotonic()
        with self._lock:
            batch = Batch(outcomes=self._outcomes, progress=self._progress, logs=self._logs)
            self._outcomes, self._progress, self._logs = [], {}, []
            batch.starts = [
                s
                for k, s in self._started.items()
                if not s.written and (now - s.monotonic >= threshold or k in batch.progress)
            ]
            for o in batch.outcomes:
                self._started.pop((o.task_id, o.attempt), None)
        return batch

    def _put_back(self, batch: Batch) -> None:
        with self._lock:
            self._outcomes[:0] = batch.outcomes
            for k, v in batch.progress.items():
                self._progress.setdefault(k, v)
            self._logs[:0] = batch.logs

    def flush(self) -> bool:
        """Write what is buffered; False if the database is away (all of it is kept).

        Normally one transaction for everything. When the database refuses the batch for what
        is in it (not for being away), every task's part is written on its own, so one record
        it cannot store never holds up the others (:meth:`_write_task_by_task`).
        """
        taken_at = time.monotonic()
        batch = self._take()
        if not batch:
            self._written_up_to(taken_at)
            return True
        try:
            finished = self._write(batch)
        except Exception as exc:  # noqa: BLE001 — this thread must outlive any error
            if is_outage(exc):
                return self._keep(batch, exc)
            if not isinstance(exc, DatabaseError):
                logger.exception("unexpected error flushing outcomes")
            logger.warning(
                "outcome flush refused (%s: %s): writing its %d outcomes task by task",
                type(exc).__name__,
                exc,
                len(batch.outcomes),
            )
            written, finished, left = self._write_task_by_task(batch)
            self._after_write(written, finished)
            if left:
                return self._keep(left, self._last_error)
        else:
            self._after_write(batch, finished)
        self._written_up_to(taken_at)
        return True

    def _keep(self, batch: Batch, exc: BaseException | str) -> bool:
        """The database is away: nothing is dropped, the batch is tried again (with back-off)."""
        self._failures += 1
        self._last_error = storable_text(str(exc))
        logger.warning(
            "outcome flush failed (%s), keeping %d outcomes buffered: %s",
            self._failures,
            len(batch.outcomes),
            exc,
        )
        self._put_back(batch)
        connection.close_if_unusable_or_obsolete()
        return False

    def _written_up_to(self, taken_at: float) -> None:
        """Everything taken at ``taken_at`` is written: only what came since is pending."""
        self._failures, self._last_error = 0, ""
        with self._lock:
            if self._outcomes or self._progress or self._logs:
                self._pending_since = max(self._pending_since or taken_at, taken_at)
            else:
                self._pending_since = None

    def _write(self, batch: Batch) -> list[Outcome]:
        """Write ``batch`` in one transaction; returns the outcomes that applied."""
        with transaction.atomic():
            written_starts = self._write_starts(batch.starts)
            self._write_progress(batch.progress)
            finished = self._write_outcomes(batch.outcomes, written_starts)
            for row in batch.logs:
                row.id = None  # a rolled-back try may have numbered it; the number is not ours
            TaskLog.objects.bulk_create(batch.logs)
            # Workflow steps and parents: their dependents are resolved in this same
            # transaction, so an outcome and its consequences land together or not at all.
            hooks.steps_ended(o.task_id for o in finished if o.status in _FINAL and o.coordinated)
        return finished

    def _write_task_by_task(self, batch: Batch) -> tuple[Batch, list[Outcome], Batch | None]:
        """Write each task's part of ``batch`` in its own transaction. A part the database
        refuses is written again without what it could not store, that loss recorded as the
        task's error (:func:`unstorable_outcome`); a part refused even so is dropped, logged.

        Returns what was written, the outcomes that applied, and what is left because the
        database went away meanwhile (None when nothing is).
        """
        parts = batch.by_task()
        written: list[Batch] = []
        finished: list[Outcome] = []
        for index, part in enumerate(parts):
            try:
                finished += self._write_part(part)
            except Exception as exc:  # noqa: BLE001 — _write_part lets only an outage through
                self._last_error = storable_text(str(exc))
                return Batch.joined(written), finished, Batch.joined(parts[index:])
            written.append(part)
        return Batch.joined(written), finished, None

    def _write_part(self, part: Batch) -> list[Outcome]:
        """One task's part, or its stand-in if refused; raises only for an outage."""
        try:
            return self._write(part)
        except Exception as exc:  # noqa: BLE001
            if is_outage(exc):
                raise
            refusal = exc
        task_id = ", ".join(part.task_ids())
        logger.error(
            "the database refused what task %s recorded (%s: %s); writing it without that",
            task_id,
            type(refusal).__name__,
            refusal,
        )
        stand_in = Batch(
            starts=part.starts,
            progress=part.progress,
            outcomes=[unstorable_outcome(o, refusal) for o in part.outcomes],
            logs=_unstorable_logs(part.logs, refusal),
        )
        try:
            return self._write(stand_in)
        except Exception as exc:  # noqa: BLE001
            if is_outage(exc):
                raise
            # Not even the stand-in fits (the task row was deleted meanwhile, say): keeping it
            # would fail every flush from now on.
            logger.error("dropped what task %s recorded: %s: %s", task_id, type(exc).__name__, exc)
            return []

    def _after_write(self, batch: Batch, finished: list[Outcome]) -> None:
        for s in batch.starts:
            s.written = True
        if batch.outcomes:
            # Slots freed: the dispatcher refills exactly these queues (and spawned children's).
            outcomes = batch.outcomes
            queues = {o.queue or "*" for o in outcomes}
            wake_dispatcher(*queues.union(*({c.queue for c in o.children} for o in outcomes)))
        finished = [o for o in finished if o.status != TaskStatus.BLOCKED]
        if finished:
            signals.tasks_finished.send_robust(sender=OutcomeWriter, outcomes=finished)

    def _write_starts(self, starts: list[StartedAttempt]) -> set[tuple[uuid.UUID, int]]:
        if not starts:
            return set()
        now = timezone.now()
        changed = transitions.mark_running(
            [(s.task_id, s.attempt, s.started_at) for s in starts], self.worker_id, now
        )
        publish_on_commit(
            insert_events(
                [
                    NewEvent(
                        s.task_id,
                        EventKind.STARTED,
                        s.attempt,
                        s.started_at,
                        {"worker": self.worker_id},
                    )
                    for s in starts
                    if (uuid.UUID(s.task_id), s.attempt) in changed
                ]
            )
        )
        return changed

    def _write_progress(self, progress: dict[AttemptKey, int]) -> None:
        if not progress:
            return
        now = timezone.now()
        rows = [(t, a, p, now) for (t, a), p in progress.items()]
        changed = guarded_update(
            ("id", "attempt", "progress", "updated_at"), rows, _PROGRESS_SET, [TaskStatus.RUNNING]
        )
        publish_on_commit(
            insert_events(
                [
                    NewEvent(t, EventKind.PROGRESS, a, now, {"progress": p})
                    for (t, a), p in progress.items()
                    if (uuid.UUID(t), a) in changed
                ]
            )
        )

    def _write_outcomes(self, outcomes: list[Outcome], written_starts: set) -> list[Outcome]:
        outcomes = _honour_cancel_requests(outcomes)
        finishing = [o for o in outcomes if o.status != TaskStatus.PENDING]
        releasing = [o for o in outcomes if o.status == TaskStatus.PENDING]
        now = timezone.now()
        changed = transitions.finish([self._finish_row(o, now) for o in finishing])
        # An attempt that never started here is handed back only while its row is still queued:
        # if the row says running, someone else holds the attempt.
        for started in (True, False):
            changed |= transitions.hand_back(
                [
                    (o.task_id, o.attempt, o.retry_at)
                    for o in releasing
                    if (o.start is not None) == started
                ],
                now,
                started=started,
            )
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
                NewEvent(
                    o.task_id, _OUTCOME_EVENTS[o.status], o.attempt, o.finished_at, o.event_data
                )
            )
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
        hooks.children_spawned(
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
