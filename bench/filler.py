"""A million finished task rows, inserted fast with PostgreSQL COPY, for the table-growth and
scale measures.

What goes in: finished tasks spread evenly over the last 7 days — 90 % completed, 5 % failed,
5 % cancelled — across 8 task names and 6 queues, with distinct correlation ids, 5,000 distinct
user ids, small JSON payloads and results, and ONE event per task (its final event: completed /
failed / cancelled). Dead letters and logs are not inserted. The rows are marked with
``worker_id = 'bench-filler'``, removed at the end of the run unless --keep-filler is given, and
the tables are VACUUMed, ANALYZEd and checkpointed after the insert (see _settle).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
import uuid

from django.db import DatabaseError, connection, transaction

from .core import Skip, is_postgres

logger = logging.getLogger("bench")
MARK = "bench-filler"
NAMES = [
    "emails.send",
    "webhooks.deliver",
    "payments.settle",
    "kyc.check",
    "images.resize",
    "notifications.push",
    "sync.accounts",
    "http.request",
]
QUEUES = ["default", "email", "webhooks", "notifications", "analytics", "image-processing"]
TASK_COLUMNS = (
    "id",
    "name",
    "queue",
    "status",
    "payload",
    "result",
    "priority",
    "attempt",
    "max_attempts",
    "timeout",
    "scheduled_at",
    "queued_at",
    "started_at",
    "completed_at",
    "duration",
    "error",
    "traceback",
    "progress",
    "correlation_id",
    "user_id",
    "dedup_key",
    "worker_id",
    "cancel_requested",
    "created_at",
    "updated_at",
    "step_key",
    "step_kind",
    "trigger_rule",
    "allow_failure",
    "deps_remaining",
    "compensation",
    "compensate_failed",
)
CHUNK = 100_000


def filler_count() -> int:
    from taskhub.models import Task

    return Task.objects.filter(worker_id=MARK).count()


def ensure(count: int) -> int:
    """Make sure ``count`` filler rows exist; returns how many were inserted now."""
    if not is_postgres():
        raise Skip("needs PostgreSQL (COPY)")
    missing = count - filler_count()
    if missing <= 0:
        return 0
    started = time.monotonic()
    inserted = 0
    while inserted < missing:
        size = min(CHUNK, missing - inserted)
        _copy_chunk(size, seed=inserted)
        inserted += size
        logger.info("filler: %d/%d rows", inserted, missing)
    _settle()
    logger.info("filler: %d rows in %.0fs", inserted, time.monotonic() - started)
    return inserted


def _settle() -> None:
    """Leave the tables as a system that grew them over days would have them: vacuumed and
    analysed, their pages written out. Straight after the load, the checkpoint writing back a
    million fresh rows (and the first reads setting their hint bits) could land in the
    table-growth run, which would then measure the load's aftermath, not the table's size."""
    _vacuum_analyze()
    with connection.cursor() as cursor:
        try:
            cursor.execute("CHECKPOINT")  # superuser or pg_checkpoint only
        except DatabaseError as exc:
            logger.warning("filler: no CHECKPOINT after the load (%s)", exc)


def _vacuum_analyze() -> None:
    from taskhub.models import Task, TaskEvent

    with connection.cursor() as cursor:
        for model in (Task, TaskEvent):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")


def _copy_chunk(size: int, seed: int) -> None:
    from taskhub.models import Task, TaskEvent

    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    week = 7 * 24 * 3600
    events = []
    task_sql = f"COPY {Task._meta.db_table} ({', '.join(TASK_COLUMNS)}) FROM STDIN"
    event_sql = f"COPY {TaskEvent._meta.db_table} (task_id, kind, attempt, at, data) FROM STDIN"
    with transaction.atomic(), connection.cursor() as wrapper:
        cursor = wrapper.cursor  # the psycopg cursor: Django has no COPY API
        with cursor.copy(task_sql) as copy:
            for i in range(size):
                created = now - dt.timedelta(seconds=rng.random() * week)
                roll = rng.random()
                status = "completed" if roll < 0.9 else "failed" if roll < 0.95 else "cancelled"
                duration = rng.expovariate(1 / 0.2)
                started = created + dt.timedelta(milliseconds=rng.randint(2, 50))
                finished = started + dt.timedelta(seconds=duration)
                attempt = 1 if status != "failed" else 5
                task_id = uuid.uuid4()
                name = NAMES[rng.randrange(len(NAMES))]
                error = "" if status != "failed" else "ConnectionError: provider unreachable"
                copy.write_row(
                    (
                        task_id,
                        name,
                        QUEUES[rng.randrange(len(QUEUES))],
                        status,
                        json.dumps({"n": seed + i}),
                        json.dumps({"ok": True}) if status == "completed" else None,
                        0,
                        attempt,
                        5,
                        300.0,
                        created,
                        created,
                        started,
                        finished,
                        duration,
                        error,
                        "",
                        100 if status == "completed" else 0,
                        f"order-{seed + i}",
                        f"user-{rng.randrange(5000)}",
                        None,
                        MARK,
                        False,
                        created,
                        finished,
                        "",
                        "",
                        "",
                        False,
                        0,
                        "",
                        False,
                    )
                )
                events.append((task_id, status, attempt, finished, "{}"))
        with cursor.copy(event_sql) as copy:
            for row in events:
                copy.write_row(row)


def drop() -> int:
    """Remove the filler rows and their events."""
    from taskhub.models import Task, TaskEvent

    if not is_postgres():
        return 0
    t = Task._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {TaskEvent._meta.db_table} WHERE task_id IN "
            f"(SELECT id FROM {t} WHERE worker_id = %s)",
            [MARK],
        )
        cursor.execute(f"DELETE FROM {t} WHERE worker_id = %s", [MARK])
        deleted = cursor.rowcount
    _vacuum_analyze()
    return deleted
