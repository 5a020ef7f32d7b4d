"""Enqueue cost, no worker running: ``taskhub.schedule()`` one at a time (each its own
transaction: the row, its event, the dispatcher nudge) vs bare ``actor.send`` one at a time
(target ≥ 0.5 ×); ``schedule_many`` in bulk, per task, vs bare send (target ≥ 5 ×).

On PostgreSQL two reference rows show where the single-call cost lies: a one-column INSERT +
COMMIT (what one sequential durable commit costs on this machine at all) and schedule()'s own
statement with its rows built beforehand (the database's share of a call)."""

from __future__ import annotations

import os
import time

from .core import Context, Row, at_least, delete_tagged, info

NAME = "enqueue"
SINGLE = 2_000
BULK = 20_000


def _rate(count: int, fn) -> float:
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def _on_postgresql() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


def _commit_floor(count: int) -> float:
    """Durable single-row commits per second into a table with only a primary key: what this
    machine's PostgreSQL allows one sequential caller at all (each commit waits for its WAL
    flush), whatever the row. Reported beside schedule(), which is one such commit."""
    import uuid

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_commit_floor (id uuid PRIMARY KEY)")
        try:
            rate = _rate(
                count,
                lambda: [
                    cursor.execute("INSERT INTO bench_commit_floor VALUES (%s)", [uuid.uuid4()])
                    for _ in range(count)
                ],
            )
        finally:
            cursor.execute("DROP TABLE bench_commit_floor")
    return rate


def _statement_rate(count: int, tag: str) -> float:
    """schedule()'s own INSERT (the task row and its created event, one statement, one commit)
    with the rows built before the clock starts: the database's share of a schedule() call,
    without the validation and the Python around it."""
    from django.utils import timezone

    from taskhub.definitions.registry import get_definition
    from taskhub.engine.enqueue import _created_event, _new_row, _resolve_options
    from taskhub.engine.store import insert_task_with_event

    definition, now = get_definition("bench.noop"), timezone.now()
    opts = _resolve_options(
        definition,
        priority=None,
        max_attempts=None,
        delay=None,
        eta=None,
        correlation_id=tag,
        user_id=None,
        timeout=None,
        now=now,
    )
    rows = [_new_row(definition, {}, opts, None, now) for _ in range(count)]
    pairs = [(row, _created_event(row)) for row in rows]
    return _rate(count, lambda: [insert_task_with_event(row, event) for row, event in pairs])


def run(ctx: Context) -> list[Row]:
    from taskhub import schedule, schedule_many

    from . import bare

    single, bulk = ctx.n(SINGLE), ctx.n(BULK)
    broker, actors = bare.build(os.environ["REDIS_URL"], ctx.bare_namespace)
    broker.flush(bare.QUEUE)
    tag_single, tag_bulk = ctx.tag("enqueue-single"), ctx.tag("enqueue-bulk")
    try:
        # Warm both paths (imports, connections, prepared scripts) before timing.
        for _ in range(20):
            actors["noop"].send()
            schedule("bench.noop", {}, correlation_id=tag_single)
        send_rate = _rate(single, lambda: [actors["noop"].send() for _ in range(single)])
        single_rate = _rate(
            single,
            lambda: [schedule("bench.noop", {}, correlation_id=tag_single) for _ in range(single)],
        )
        bulk_rate = _rate(
            bulk, lambda: schedule_many("bench.noop", [{}] * bulk, correlation_id=tag_bulk)
        )
        floor_rate = statement_rate = None
        if _on_postgresql():
            floor_rate = _commit_floor(single)
            statement_rate = _statement_rate(single, tag_single)
    finally:
        broker.flush(bare.QUEUE)
        delete_tagged(tag_single)
        delete_tagged(tag_bulk)
    ctx.details[NAME] = {
        "send": send_rate,
        "schedule": single_rate,
        "schedule_many": bulk_rate,
        "commit_floor": floor_rate,
        "statement": statement_rate,
    }
    floor = []
    if floor_rate:
        floor = [
            info(
                NAME,
                "INSERT+COMMIT floor",
                round(floor_rate),
                "commits/s",
                note=f"1-column row, {single} sequential; / send = {floor_rate / send_rate:.2f}",
            ),
            info(
                NAME,
                "schedule()'s statement alone",
                round(statement_rate),
                "commits/s",
                note=f"row + event built beforehand; / send = {statement_rate / send_rate:.2f}",
            ),
        ]
    return [
        info(NAME, "bare actor.send", round(send_rate), "msgs/s", note=f"{single} sequential"),
        info(NAME, "schedule()", round(single_rate), "tasks/s", note=f"{single} sequential"),
        *floor,
        at_least(NAME, "schedule() / send", round(single_rate / send_rate, 3), 0.5),
        info(NAME, "schedule_many()", round(bulk_rate), "tasks/s", note=f"{bulk} in one call"),
        at_least(NAME, "schedule_many() / send", round(bulk_rate / send_rate, 2), 5),
    ]
