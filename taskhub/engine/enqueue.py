"""The Python API for scheduling work: validate first, then one INSERT in the caller's transaction.

Nothing is sent to the broker here. The dispatcher picks committed rows up, so a task scheduled in
a transaction that rolls back leaves no trace (docs/architecture.md, "Nothing before commit").
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models.base import ModelState
from django.utils import timezone

from ..definitions.payloads import validate_payload, validated_json
from ..definitions.priorities import parse_priority
from ..definitions.registry import TaskDefinition, declared_queues, get_definition
from ..errors import InvalidTaskRequest
from ..models import ACTIVE_STATUSES, EventKind, Task, TaskEvent
from ..safety.storable import unstorable_reason
from .broker import wake_dispatcher
from .events import publish_on_commit
from .store import NewEvent, copy_rows, insert_task_with_event, insert_uniform_tasks

TaskRef = str | TaskDefinition
#: From this many rows on, insert_rows writes with COPY on PostgreSQL.
COPY_THRESHOLD = 200
#: From this many rows on, schedule_many writes rows and events in one statement on PostgreSQL.
BULK_STATEMENT_THRESHOLD = 50


@dataclass(frozen=True, kw_only=True)
class ScheduleOptions:
    """Per-call options, validated once and shared by every task of a bulk call."""

    priority: int
    max_attempts: int
    scheduled_at: dt.datetime
    correlation_id: str
    user_id: str
    timeout: float


def _resolve_options(
    definition: TaskDefinition,
    *,
    priority: str | int | None,
    max_attempts: int | None,
    delay: float | None,
    eta: dt.datetime | None,
    correlation_id: str | None,
    user_id: str | int | None,
    timeout: float | None,
    now: dt.datetime,
) -> ScheduleOptions:
    if delay is not None and eta is not None:
        raise InvalidTaskRequest("give delay or eta, not both", field="delay")
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise InvalidTaskRequest(
                "delay must be a non-negative number of seconds", field="delay"
            )
        scheduled_at = now + dt.timedelta(seconds=delay)
    elif eta is not None:
        if timezone.is_naive(eta):
            raise InvalidTaskRequest("eta must be timezone-aware", field="eta")
        scheduled_at = max(eta, now)
    else:
        scheduled_at = now
    attempts = definition.effective_max_attempts if max_attempts is None else max_attempts
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 100:
        raise InvalidTaskRequest(
            "max_attempts must be a whole number from 1 to 100", field="max_attempts"
        )
    limit = timeout if timeout is not None else definition.effective_timeout
    if not isinstance(limit, int | float) or limit <= 0:
        raise InvalidTaskRequest("timeout must be a positive number of seconds", field="timeout")
    for name, value in (("correlation_id", correlation_id), ("user_id", user_id)):
        if value is not None and len(str(value)) > 200:
            raise InvalidTaskRequest(f"{name} is longer than 200 characters", field=name)
        if value is not None and (unstorable := unstorable_reason(str(value))):
            raise InvalidTaskRequest(f"{name} {unstorable}", field=name)
    return ScheduleOptions(
        priority=parse_priority(priority, definition.priority),
        max_attempts=attempts,
        scheduled_at=scheduled_at,
        correlation_id=str(correlation_id or ""),
        user_id="" if user_id is None else str(user_id),
        timeout=float(limit),
    )


def _check_queue(definition: TaskDefinition) -> None:
    if definition.queue not in declared_queues():
        raise InvalidTaskRequest(f"queue {definition.queue!r} is not declared", field="queue")


def _new_row(
    definition: TaskDefinition,
    payload: dict,
    opts: ScheduleOptions,
    dedup_key: str | None,
    now: dt.datetime,
) -> Task:
    return Task(
        id=uuid.uuid4(),
        name=definition.name,
        task_type=definition.task_type,
        queue=definition.queue,
        payload=payload,
        priority=opts.priority,
        max_attempts=opts.max_attempts,
        timeout=opts.timeout,
        scheduled_at=opts.scheduled_at,
        correlation_id=opts.correlation_id,
        user_id=opts.user_id,
        dedup_key=dedup_key,
        created_at=now,
        updated_at=now,
    )


def _created_event(row: Task) -> TaskEvent:
    data = {"priority": row.priority, "scheduled_at": row.scheduled_at.isoformat()}
    return TaskEvent(
        task_id=row.id, kind=EventKind.CREATED, attempt=0, at=row.created_at, data=data
    )


def _created_events(rows: Sequence[Task]) -> list[TaskEvent]:
    """The created event of each row (positional construction and shared data: see
    _row_factory)."""
    shared: dict[tuple, dict] = {}
    events = []
    for row in rows:
        key = (row.priority, row.scheduled_at)
        data = shared.get(key)
        if data is None:
            data = shared[key] = _created_event(row).data
        # Field order: id, task, kind, attempt, at, data.
        events.append(TaskEvent(None, row.id, EventKind.CREATED, 0, row.created_at, data))
    return events


def _existing_duplicate(dedup_key: str, window: float | None, now: dt.datetime) -> Task | None:
    active = Task.objects.filter(dedup_key=dedup_key, status__in=ACTIVE_STATUSES).first()
    if active is not None or not window:
        return active
    since = now - dt.timedelta(seconds=window)
    return (
        Task.objects.filter(dedup_key=dedup_key, completed_at__gte=since)
        .order_by("-completed_at")
        .first()
    )


def schedule(
    task: TaskRef,
    payload: dict[str, Any] | None = None,
    *,
    priority: str | int | None = None,
    delay: float | None = None,
    eta: dt.datetime | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
    correlation_id: str | None = None,
    user_id: str | int | None = None,
    dedup_key: str | None = None,
    dedup_window: float | None = None,
) -> Task:
    """Schedule one task and return its row.

    Raises :class:`~taskhub.errors.InvalidTaskRequest` (nothing written) for an unknown task, an
    invalid or oversize payload, or bad options. With ``dedup_key``, while a task with that key is
    unfinished — or finished less than ``dedup_window`` seconds ago — that task is returned
    instead of a new one. Inside a transaction the task can only start after it commits.
    """
    definition = get_definition(task)
    _check_queue(definition)
    now = timezone.now()
    clean = validate_payload(definition, payload)
    opts = _resolve_options(
        definition,
        priority=priority,
        max_attempts=max_attempts,
        delay=delay,
        eta=eta,
        correlation_id=correlation_id,
        user_id=user_id,
        timeout=timeout,
        now=now,
    )
    if dedup_key is not None and (not isinstance(dedup_key, str) or not 0 < len(dedup_key) <= 255):
        raise InvalidTaskRequest("dedup_key must be 1 to 255 characters", field="dedup_key")
    if dedup_key is not None and (unstorable := unstorable_reason(dedup_key)):
        raise InvalidTaskRequest(f"dedup_key {unstorable}", field="dedup_key")
    row = _new_row(definition, clean, opts, dedup_key, now)
    if dedup_key:
        existing = _existing_duplicate(dedup_key, dedup_window, now)
        if existing is not None:
            return existing
    try:
        _insert_one(row, dedup_key)
    except IntegrityError:
        if not dedup_key:
            raise
        # Another caller won the race for this key; the constraint makes exactly one winner.
        return Task.objects.get(dedup_key=dedup_key, status__in=ACTIVE_STATUSES)
    transaction.on_commit(lambda: wake_dispatcher(row.queue))
    return row


def _insert_one(row: Task, dedup_key: str | None) -> None:
    event = _created_event(row)
    # Inside the caller's transaction a dedup race must not poison it: keep the savepoint.
    guarded = dedup_key and transaction.get_connection().in_atomic_block
    if connection.vendor == "postgresql" and not guarded:
        insert_task_with_event(row, event)
    else:
        with transaction.atomic():
            row.save(force_insert=True)
            event.save(force_insert=True)
    publish_on_commit([event])


def schedule_many(
    task: TaskRef,
    payloads: Iterable[dict[str, Any]],
    *,
    priority: str | int | None = None,
    delay: float | None = None,
    eta: dt.datetime | None = None,
    max_attempts: int | None = None,
    timeout: float | None = None,
    correlation_id: str | None = None,
    user_id: str | int | None = None,
    batch_size: int = 2000,
) -> list[Task]:
    """Schedule many tasks of one type at once (a backfill): all or nothing.

    Every payload is validated before anything is written; a bad one raises
    InvalidTaskRequest naming its index and nothing is stored.
    """
    definition = get_definition(task)
    _check_queue(definition)
    now = timezone.now()
    opts = _resolve_options(
        definition,
        priority=priority,
        max_attempts=max_attempts,
        delay=delay,
        eta=eta,
        correlation_id=correlation_id,
        user_id=user_id,
        timeout=timeout,
        now=now,
    )
    encoded = []
    for index, payload in enumerate(payloads):
        try:
            encoded.append(validated_json(definition, payload))
        except InvalidTaskRequest as exc:
            raise InvalidTaskRequest(
                f"item {index}: {exc}", field=exc.field, errors={f"{index}": [str(exc)]}
            ) from None
    if connection.vendor == "postgresql" and len(encoded) >= BULK_STATEMENT_THRESHOLD:
        return _insert_uniform(definition, opts, encoded, now)
    make_row = _row_factory(definition, opts, now)
    rows = [make_row(json.loads(text)) for text in encoded]
    insert_rows(rows, batch_size=batch_size)
    return rows


def _insert_uniform(
    definition: TaskDefinition, opts: ScheduleOptions, payloads: list[str], now: dt.datetime
) -> list[Task]:
    """PostgreSQL, many rows: one statement writes the rows and their created events
    (store.insert_uniform_tasks); the returned rows are built from one template without
    Model.__init__, which cost more per row than the database's work."""
    template = _new_row(definition, {}, opts, None, now)
    event = _created_event(template)
    raw = os.urandom(16 * len(payloads))
    ids = [uuid.UUID(bytes=raw[i : i + 16], version=4) for i in range(0, len(raw), 16)]
    with transaction.atomic():
        event_ids = insert_uniform_tasks(template, ids, payloads, event)
        events = [NewEvent(task_id, EventKind.CREATED, 0, event.at, event.data) for task_id in ids]
        for e, event_id in zip(events, event_ids, strict=True):
            e.id = event_id
        publish_on_commit(events)
    transaction.on_commit(lambda: wake_dispatcher(definition.queue))
    return _saved_copies(template, ids, [json.loads(text) for text in payloads])


def _saved_copies(template: Task, ids: list[uuid.UUID], payloads: list[dict]) -> list[Task]:
    """Saved Task instances that differ from ``template`` only in id and payload."""
    values = {k: v for k, v in template.__dict__.items() if k != "_state"}
    alias = transaction.get_connection().alias
    rows = []
    for task_id, payload in zip(ids, payloads, strict=True):
        row = Task.__new__(Task)
        row.__dict__.update(values)
        row.id, row.payload = task_id, payload
        state = row._state = ModelState()
        state.adding, state.db = False, alias
        rows.append(row)
    return rows


def _row_factory(definition: TaskDefinition, opts: ScheduleOptions, now: dt.datetime):
    """Rows that differ only in id and payload, built from one template with positional
    arguments: the model's keyword path (defaults looked up per field) dominated bulk calls."""
    template = _new_row(definition, {}, opts, None, now)
    fields = Task._meta.concrete_fields
    values = [getattr(template, f.attname) for f in fields]
    id_at = next(i for i, f in enumerate(fields) if f.attname == "id")
    payload_at = next(i for i, f in enumerate(fields) if f.attname == "payload")

    def make_row(payload: dict) -> Task:
        values[id_at], values[payload_at] = uuid.uuid4(), payload
        return Task(*values)

    return make_row


def insert_rows(rows: Sequence[Task], *, batch_size: int = 2000) -> None:
    """Insert prepared task rows and their created events in one transaction."""
    if not rows:
        return
    with transaction.atomic():
        events = _created_events(rows)
        if connection.vendor == "postgresql" and len(rows) >= COPY_THRESHOLD:
            copy_rows(Task, rows)
            copy_rows(TaskEvent, events)  # ids drawn first: live streams are told them
        else:
            Task.objects.bulk_create(rows, batch_size=batch_size)
            TaskEvent.objects.bulk_create(events, batch_size=batch_size)
        publish_on_commit(events)
    queues = {r.queue for r in rows}
    transaction.on_commit(lambda: wake_dispatcher(*queues))
