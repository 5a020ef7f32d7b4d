"""Enqueue cost, no worker running: ``taskhub.schedule()`` one at a time (each its own
transaction: the row, its event, the dispatcher nudge) vs bare ``actor.send`` one at a time
(target ≥ 0.5 ×); ``schedule_many`` in bulk, per task, vs bare send (target ≥ 5 ×)."""

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
    finally:
        broker.flush(bare.QUEUE)
        delete_tagged(tag_single)
        delete_tagged(tag_bulk)
    ctx.details[NAME] = {"send": send_rate, "schedule": single_rate, "schedule_many": bulk_rate}
    return [
        info(NAME, "bare actor.send", round(send_rate), "msgs/s", note=f"{single} sequential"),
        info(NAME, "schedule()", round(single_rate), "tasks/s", note=f"{single} sequential"),
        at_least(NAME, "schedule() / send", round(single_rate / send_rate, 3), 0.5),
        info(NAME, "schedule_many()", round(bulk_rate), "tasks/s", note=f"{bulk} in one call"),
        at_least(NAME, "schedule_many() / send", round(bulk_rate / send_rate, 2), 5),
    ]
