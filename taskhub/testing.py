"""Testing support for projects that use taskhub (docs/testing.md).

Tasks run in the test's own process — no worker, dispatcher or broker — through the engine's
own code: the dispatcher's claim (``transitions.mark_queued`` via
``dispatcher.claim_ready_tasks``), the worker's attempt (``worker.begin_attempt``,
``worker.run_attempt``, ``worker.decide_outcome``: payload parsing, a real ``TaskContext``, the
retry policy) and the outcome writer (``outcomes.OutcomeWriter``: guarded status writes,
events, dead letters, workflow steps settled in the same transaction). Rows therefore end with
the statuses, results, errors, events and dead letters a worker would write.

``TASKHUB["TESTING"]`` chooses the mode; :func:`testing_mode` sets it for a block or a test,
the fixtures of ``taskhub.pytest_plugin`` for a pytest test:

- ``"manual"``: scheduling writes rows as always and nothing runs until the test calls
  :func:`drain`; :func:`assert_scheduled`, :func:`refute_scheduled` and
  :func:`scheduled_tasks` look at what was scheduled.
- ``"immediate"``: every commit that makes tasks due runs them, in the committing thread,
  before the commit returns (``taskhub.engine.broker.wake_dispatcher`` hands its wake-up to
  :func:`wake_in_process`). A task whose time has not come — a ``delay``, an ``eta``, a retry
  waiting for its policy's delay — stays ``pending`` / ``retrying`` until a test lets time pass
  with ``drain(include_delayed=True)``.

Scheduling validates as in production (nothing here bypasses ``schedule()``), so a bad payload
raises ``InvalidTaskRequest`` and writes nothing; a transaction that rolls back runs nothing.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone
from pydantic import BaseModel

from .conf import TESTING_MODES, taskhub_settings
from .definitions.payloads import parse_payload, to_jsonable
from .definitions.registry import TaskDefinition, declared_queues, get_definition
from .engine.dispatcher import claim_ready_tasks, record_queued
from .engine.outcomes import OutcomeWriter
from .engine.worker import begin_attempt, decide_outcome, run_attempt
from .errors import InvalidTaskRequest
from .models import ACTIVE_STATUSES, READY_STATUSES, QueueState, Task, TaskStatus

__all__ = [
    "DRAIN_LIMIT",
    "DrainLimitReached",
    "Drained",
    "RanAttempt",
    "assert_scheduled",
    "drain",
    "refute_scheduled",
    "scheduled_tasks",
    "testing_mode",
    "wake_in_process",
]

#: Attempts one drain runs at most before it gives up (a task that keeps scheduling itself).
DRAIN_LIMIT = 1000
_local = threading.local()


class DrainLimitReached(RuntimeError):
    """A drain ran its limit of attempts and tasks were still due."""


@dataclass(frozen=True)
class RanAttempt:
    """One attempt a drain ran, and how it ended (the outcome the worker code decided)."""

    task_id: str
    name: str
    attempt: int
    status: str
    error: str


@dataclass
class Drained:
    """What a drain ran, in order."""

    attempts: list[RanAttempt] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.attempts)

    @property
    def counts(self) -> dict[str, int]:
        """Attempts by how they ended: ``{"completed": 2, "retrying": 1}``."""
        return dict(Counter(a.status for a in self.attempts))


def worker_id() -> str:
    """What in-process attempts record as their worker (``Task.worker_id``, started events)."""
    return f"in-process:{socket.gethostname()}:{os.getpid()}"


# -- running tasks in-process --------------------------------------------------------------------
def wake_in_process(queues: Iterable[str]) -> None:
    """Take a dispatcher wake-up (``taskhub.engine.broker.wake_dispatcher`` while ``TESTING`` is
    set, through the engine's ``wake_in_process`` hook).

    Manual mode: nothing (the test drains). Immediate mode: drain the queues now — or, when a
    drain already runs on this thread (a handler scheduled more work, an outcome released a
    workflow step), let that drain take the queues too."""
    if taskhub_settings.TESTING != "immediate":
        return
    woken = getattr(_local, "woken", None)
    if woken is not None:
        woken.update(queues)
        return
    queues = set(queues)
    drain(None if "*" in queues else queues)


def drain(
    queue: str | Iterable[str] | None = None,
    *,
    include_delayed: bool = False,
    limit: int = DRAIN_LIMIT,
    raise_errors: bool = False,
) -> Drained:
    """Run due tasks of ``queue`` (a name, several, or None: every queue) in this thread, one
    attempt at a time — highest priority first (unless ENABLE_PRIORITY is off), then the longest
    due, as the dispatcher picks — until none is due; tasks those attempts schedule in the same
    queues run too. Paused queues are left alone.

    ``include_delayed``: time passes — a task not due yet (a delay, an eta, a retry waiting for
    its policy's delay) is made due when nothing else is, in the order they would come due, so
    a failing task runs through every retry to ``failed`` and its dead letter.
    ``limit``: DrainLimitReached once this many attempts ran and more are due.
    ``raise_errors``: an exception a handler raised is raised again once its attempt's outcome
    is recorded (the drain stops there).
    """
    if getattr(_local, "woken", None) is not None:
        raise RuntimeError("drain() cannot be called by a task that drain() is running")
    every = declared_queues()
    named = [queue] if isinstance(queue, str) else queue
    queues = set(every if named is None else named)
    # Time passes only for the queues asked for; queues woken meanwhile run what is due.
    delayed = set(queues) if include_delayed else set()
    writer = OutcomeWriter(worker_id())
    drained = Drained()
    _local.woken = set()
    try:
        while True:
            if _local.woken:
                queues |= set(every) if "*" in _local.woken else _local.woken
                _local.woken = set()
            now = timezone.now()
            chosen = _next_queue(queues, delayed, now)
            if chosen is None:
                return drained
            if len(drained) >= limit:
                raise DrainLimitReached(
                    f"drain ran {limit} attempts and tasks of {chosen!r} are still due "
                    "(a task that schedules itself?)"
                )
            with transaction.atomic():
                claimed = claim_ready_tasks(chosen, 1, now)
                record_queued(claimed, now)
            for dispatched in claimed:
                drained.attempts.append(_run(dispatched.envelope, writer, raise_errors))
    finally:
        _local.woken = None


def _next_queue(queues: set[str], delayed: set[str], now) -> str | None:
    """The queue of the task to run next, or None. When nothing is due, the next task of the
    ``delayed`` queues to come due is made due (its scheduled_at brought forward to ``now``)."""
    paused = set(
        QueueState.objects.filter(paused=True, name__in=queues).values_list("name", flat=True)
    )
    ready = Task.objects.filter(status__in=READY_STATUSES)
    # The dispatcher's order: priority first unless ENABLE_PRIORITY is off.
    order = ("-priority", "scheduled_at") if taskhub_settings.ENABLE_PRIORITY else ("scheduled_at",)
    due = (
        ready.filter(queue__in=queues - paused, scheduled_at__lte=now)
        .order_by(*order)
        .values_list("queue", flat=True)
        .first()
    )
    if due is not None or not delayed - paused:
        return due
    nearest = (
        ready.filter(queue__in=delayed - paused)
        .order_by("scheduled_at", "-priority")
        .values_list("id", "queue")
        .first()
    )
    if nearest is None:
        return None
    Task.objects.filter(id=nearest[0], status__in=READY_STATUSES).update(scheduled_at=now)
    return nearest[1]


def _run(env: dict[str, Any], writer: OutcomeWriter, raise_errors: bool) -> RanAttempt:
    """One claimed attempt, as a worker thread runs it: start, handler, outcome, then the
    outcome writer's flush (which settles workflow steps and wakes what the outcome freed)."""
    attempt = begin_attempt(env, writer)
    error: BaseException | None = None
    try:
        run_attempt(attempt)
    # The handler's failure is the attempt's outcome, SystemExit included, as on a worker
    # (Dramatiq's WorkerThread hands any exception to the middleware). Not KeyboardInterrupt,
    # nor the test framework's own outcomes (pytest.fail in a handler): those end the drain.
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        error = exc
    outcome = decide_outcome(attempt, error)
    writer.record_outcome(outcome)
    if not writer.flush():
        raise RuntimeError(
            f"the outcome of {env['name']} {env['id']} could not be written: "
            f"{writer.health()['last_error']}"
        )
    if raise_errors and error is not None:
        raise error
    return RanAttempt(env["id"], env["name"], env["attempt"], outcome.status, outcome.error)


# -- switching modes -----------------------------------------------------------------------------
class testing_mode(override_settings):
    """``TASKHUB["TESTING"] = mode``, the other TASKHUB settings kept: Django's
    ``override_settings``, so it is a context manager and decorates a test function or a test
    class (a ``TestCase`` too) the same way."""

    def __init__(self, mode: str) -> None:
        if mode not in TESTING_MODES:
            raise ValueError(f"unknown testing mode {mode!r}: one of {TESTING_MODES}")
        self.mode = mode
        super().__init__(TASKHUB=self._taskhub())

    def _taskhub(self) -> dict[str, Any]:
        return {**(getattr(settings, "TASKHUB", None) or {}), "TESTING": self.mode}

    def enable(self) -> None:
        # The TASKHUB settings in force now (another override may have changed them since).
        self.options = {"TASKHUB": self._taskhub()}
        super().enable()


# -- what was scheduled --------------------------------------------------------------------------
def scheduled_tasks(
    name: str | TaskDefinition | None = None,
    payload: Any = None,
    *,
    queue: str | None = None,
    status: str | Iterable[str] | None = None,
    **fields: Any,
) -> list[Task]:
    """Task rows matching every criterion given, oldest first.

    ``name``: a task name or definition (an unknown one raises UnknownTask). ``payload``: a
    dict's keys must be in the stored payload with these values (JSON-compared, other keys
    ignored); a pydantic model must equal the payload as the handler would get it (its
    schema's defaults filled in). ``status``: a status, several, ``"any"``, or None —
    unfinished (pending, queued, running, retrying, blocked). ``fields``: any other Task
    field lookups (``correlation_id=``, ``user_id=``, ``priority=``, ``dedup_key=``,
    ``workflow_run=`` …).
    """
    rows = Task.objects.all()
    if name is not None:
        rows = rows.filter(name=get_definition(name).name)
    if queue is not None:
        rows = rows.filter(queue=queue)
    statuses = _statuses(status)
    if statuses is not None:
        rows = rows.filter(status__in=statuses)
    if fields:
        rows = rows.filter(**fields)
    found = list(rows.order_by("created_at", "id"))
    if payload is None:
        return found
    if isinstance(payload, BaseModel):
        return [t for t in found if _parsed(t) == payload]
    expected = _as_json(payload)
    if not isinstance(expected, dict):
        return [t for t in found if t.payload == expected]
    return [t for t in found if _contains(t.payload, expected)]


def assert_scheduled(
    name: str | TaskDefinition | None = None,
    payload: Any = None,
    *,
    count: int | None = None,
    queue: str | None = None,
    status: str | Iterable[str] | None = None,
    **fields: Any,
) -> list[Task]:
    """Assert that tasks match (:func:`scheduled_tasks`' criteria): at least one, or exactly
    ``count``. Returns them; the AssertionError lists what there is instead."""
    found = scheduled_tasks(name, payload, queue=queue, status=status, **fields)
    if (count is None and found) or (count is not None and len(found) == count):
        return found
    wanted = "at least 1" if count is None else f"exactly {count}"
    raise AssertionError(
        f"expected {wanted} {_describe(name, payload, queue, status, fields)}, found "
        f"{len(found)}\n{_listing(name, queue)}"
    )


def refute_scheduled(
    name: str | TaskDefinition | None = None,
    payload: Any = None,
    *,
    queue: str | None = None,
    status: str | Iterable[str] | None = None,
    **fields: Any,
) -> None:
    """Assert that no task matches (:func:`scheduled_tasks`' criteria)."""
    found = scheduled_tasks(name, payload, queue=queue, status=status, **fields)
    if found:
        raise AssertionError(
            f"expected no {_describe(name, payload, queue, status, fields)}, found "
            f"{len(found)}\n{_listing(name, queue)}"
        )


def _statuses(status: str | Iterable[str] | None) -> list[str] | None:
    if status is None:
        return list(ACTIVE_STATUSES)
    if status == "any":
        return None
    chosen = [status] if isinstance(status, str) else list(status)
    unknown = set(chosen) - set(TaskStatus.values)
    if unknown:
        raise ValueError(f"unknown task status {sorted(unknown)}: one of {TaskStatus.values}")
    return chosen


def _parsed(row: Task) -> Any:
    """The payload as the row's handler would get it (None if it no longer parses)."""
    try:
        return parse_payload(get_definition(row.name), row.payload)
    except InvalidTaskRequest:
        return None


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(to_jsonable(value), default=str))


def _contains(stored: Any, expected: dict) -> bool:
    return isinstance(stored, dict) and all(
        key in stored and stored[key] == value for key, value in expected.items()
    )


def _describe(name, payload, queue, status, fields) -> str:
    parts = ["unfinished" if status is None else ""]
    parts.append(f"task {get_definition(name).name!r}" if name is not None else "task")
    if isinstance(payload, BaseModel):
        parts.append(f"with payload {payload!r}")
    elif payload is not None:
        parts.append(f"with payload containing {_as_json(payload)!r}")
    if queue is not None:
        parts.append(f"in queue {queue!r}")
    if status not in (None, "any"):
        parts.append(f"with status {status!r}")
    parts += [f"{k}={v!r}" for k, v in fields.items()]
    return " ".join(p for p in parts if p)


def _listing(name, queue, most: int = 10) -> str:
    rows = Task.objects.all()
    if name is not None:
        rows = rows.filter(name=get_definition(name).name)
    if queue is not None:
        rows = rows.filter(queue=queue)
    total = rows.count()
    if not total:
        return "there are no such tasks at all"
    shown = rows.order_by("-created_at", "-id")[:most]
    lines = [f"  {t.name} [{t.status}] queue={t.queue} payload={t.payload!r}" for t in shown]
    more = f"\n  … and {total - most} more" if total > most else ""
    return f"tasks of that name/queue, newest first ({total}):\n" + "\n".join(lines) + more
