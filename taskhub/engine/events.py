"""Live task events: after a commit that wrote TaskEvent rows, one small message on Redis pub/sub.

The rows stay the source of truth; the message is only a wake-up that tells listeners (the web
processes' event streams, ``taskhub watch``) which rows to read. Publishing is at-most-once and
never fails or slows the writer: errors are logged, and while nobody subscribes (checked with
``PUBSUB NUMSUB`` at most once a second) nothing is sent at all. Listeners catch up from the rows
whenever they may have missed a message.

Engine writers call :func:`publish_on_commit` with the rows they just created, inside their
transaction: the message goes out after the commit, and not at all after a rollback.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction

from ..models import EventKind, TaskEvent, TaskStatus
from .broker import get_redis, key

logger = logging.getLogger(__name__)

#: The SSE event type of each event kind.
EVENT_TYPES: dict[str, str] = {kind: f"task.{kind}" for kind in EventKind.values}
#: The task status each event kind implies (the state right after the event).
KIND_STATUS: dict[str, str] = {
    EventKind.CREATED: TaskStatus.PENDING,
    EventKind.QUEUED: TaskStatus.QUEUED,
    EventKind.STARTED: TaskStatus.RUNNING,
    EventKind.PROGRESS: TaskStatus.RUNNING,
    EventKind.COMPLETED: TaskStatus.COMPLETED,
    EventKind.RETRYING: TaskStatus.RETRYING,
    EventKind.FAILED: TaskStatus.FAILED,
    EventKind.DEAD_LETTERED: TaskStatus.FAILED,
    EventKind.CANCELLED: TaskStatus.CANCELLED,
    EventKind.CANCEL_REQUESTED: TaskStatus.RUNNING,
    EventKind.RECOVERED: TaskStatus.PENDING,
    EventKind.REQUEUED: TaskStatus.PENDING,
    EventKind.BLOCKED: TaskStatus.BLOCKED,
    EventKind.RELEASED: TaskStatus.PENDING,
    EventKind.SKIPPED: TaskStatus.SKIPPED,
}
#: Row fields a stream reads (the event, plus its task's owner and labels for filtering).
ROW_FIELDS = (
    "id",
    "task_id",
    "kind",
    "attempt",
    "at",
    "data",
    "task__name",
    "task__queue",
    "task__user_id",
    "task__correlation_id",
    "task__progress",
    "task__workflow_run_id",
)
LISTENER_CHECK_SECONDS = 1.0

_listeners = {"checked": 0.0, "any": True}


def channel() -> str:
    return key("events")


def _anyone_listening(client) -> bool:
    now = time.monotonic()
    if now - _listeners["checked"] >= LISTENER_CHECK_SECONDS:
        _listeners["any"] = bool(client.pubsub_numsub(channel())[0][1])
        _listeners["checked"] = now
    return _listeners["any"]


def _summary(row: TaskEvent) -> dict[str, Any]:
    progress = (row.data or {}).get("progress")
    if row.kind == EventKind.COMPLETED:
        progress = 100
    return {
        "id": row.id,
        "task": str(row.task_id),
        "kind": row.kind,
        "attempt": row.attempt,
        "status": KIND_STATUS.get(row.kind),
        "progress": progress,
    }


def publish_events(rows: Iterable[TaskEvent]) -> None:
    """Send one message for a committed batch of event rows; log and carry on if Redis fails."""
    rows = [r for r in rows if r.pk is not None]  # unsaved: nothing a listener could read
    if not rows:
        return
    try:
        client = get_redis()
        if not _anyone_listening(client):
            return
        client.publish(channel(), json.dumps({"events": [_summary(r) for r in rows]}))
    except Exception as exc:  # a lost wake-up only delays listeners; the task must not notice
        logger.warning("could not publish %d task events: %s", len(rows), exc)


class _Batch:
    """The rows one transaction wrote, published together by one on-commit callback."""

    def __init__(self) -> None:
        self.rows: list[TaskEvent] = []

    def send(self) -> None:
        publish_events(self.rows)


def publish_on_commit(rows: Sequence[TaskEvent]) -> Sequence[TaskEvent]:
    """Publish ``rows`` once the current transaction commits; returns them unchanged.

    All rows of one transaction go out as one message. The rows may be saved after this call,
    as long as it is before the commit.
    """
    if not rows:
        return rows
    conn = transaction.get_connection()
    if not conn.in_atomic_block:  # autocommit: the rows are committed already
        publish_events(rows)
        return rows
    batch = getattr(conn, "_taskhub_event_batch", None)
    if batch is None or not any(entry[1] == batch.send for entry in conn.run_on_commit):
        batch = conn._taskhub_event_batch = _Batch()
        transaction.on_commit(batch.send)
    batch.rows.extend(rows)
    return rows


# --- reading the rows back (streams and `taskhub watch`) ------------------------------------------


def event_payload(row: dict[str, Any]) -> dict[str, Any]:
    """What a client receives for one row (from ``TaskEvent.objects.values(*ROW_FIELDS)``).

    ``version`` is the row id: a task's events are written one after another, so a larger
    version is always the newer state of that task.
    """
    data = row["data"] or {}
    progress = data.get("progress", row["task__progress"])
    if row["kind"] == EventKind.COMPLETED:
        progress = 100
    return {
        "id": row["id"],
        "type": EVENT_TYPES.get(row["kind"], f"task.{row['kind']}"),
        "task": str(row["task_id"]),
        "name": row["task__name"],
        "queue": row["task__queue"],
        "user_id": row["task__user_id"],
        "correlation_id": row["task__correlation_id"],
        "workflow": str(row["task__workflow_run_id"]) if row["task__workflow_run_id"] else None,
        "status": KIND_STATUS.get(row["kind"]),
        "attempt": row["attempt"],
        "progress": progress,
        "version": row["id"],
        "at": row["at"].isoformat(),
        "data": data,
    }


def read_events(
    *, after: int = 0, ids: Iterable[int] | None = None, limit: int = 1000, **filters: Any
) -> list[dict[str, Any]]:
    """Event payloads in id order: those after ``after`` (or exactly ``ids``) matching filters.

    Filters: ``user_id``, ``task``, ``queue``, ``correlation_id``, ``workflow`` (a run id: its
    steps' events); empty values are ignored.
    """
    qs = TaskEvent.objects.order_by("id")
    qs = qs.filter(id__in=list(ids)) if ids is not None else qs.filter(id__gt=after)
    lookups = {
        "user_id": "task__user_id",
        "task": "task_id",
        "queue": "task__queue",
        "correlation_id": "task__correlation_id",
        "workflow": "task__workflow_run_id",
    }
    for name, value in filters.items():
        if value not in (None, ""):
            qs = qs.filter(**{lookups[name]: value})
    return [event_payload(r) for r in qs.values(*ROW_FIELDS)[:limit]]
