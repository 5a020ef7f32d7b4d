"""Latency from enqueue to start (Task.started_at − created_at), measured with probe tasks
scheduled at a steady rate:
- idle: workers and dispatcher up, nothing else to do (target p50 ≤ 20 ms);
- under load: during a throughput run of no-op tasks (target p99 ≤ 250 ms). The probes are
  ``priority="critical"`` on the same queue, so they overtake the waiting rows as priorities
  promise; they still queue behind the dispatch window already in the broker.
"""

from __future__ import annotations

import threading
import time

from django.db import connection

from .core import Context, Live, Row, at_most, delete_tagged, info, percentile, run_taskhub
from .procs import TaskhubStack, wait_for

NAME = "latency"
IDLE_PROBES = 200
IDLE_RATE = 10.0  # probes per second
LOAD_COUNT = 20_000
LOAD_RATE = 20.0


def _latencies_ms(tag: str) -> list[float]:
    from taskhub.models import Task

    rows = Task.objects.filter(correlation_id=tag, started_at__isnull=False).values_list(
        "created_at", "started_at"
    )
    return [(started - created).total_seconds() * 1000 for created, started in rows]


def _wait_finished(tag: str, count: int, timeout: float = 60) -> None:
    from taskhub.models import FINISHED_STATUSES, Task

    wait_for(
        lambda: (
            Task.objects.filter(correlation_id=tag, status__in=FINISHED_STATUSES).count() >= count
        ),
        timeout,
        f"{count} probes to finish",
        interval=0.2,
    )


def _send_probes(tag: str, count: int | None, rate: float, stop: threading.Event, **options) -> int:
    from taskhub import schedule

    sent, interval = 0, 1.0 / rate
    next_at = time.monotonic()
    try:
        while not stop.is_set() and (count is None or sent < count):
            schedule("bench.probe", {}, correlation_id=tag, **options)
            sent += 1
            next_at += interval
            stop.wait(max(0.0, next_at - time.monotonic()))
    finally:
        connection.close()  # this thread's own connection
    return sent


def idle(ctx: Context) -> list[Row]:
    count = ctx.n(IDLE_PROBES)
    warm, tag = ctx.tag("latency-warm"), ctx.tag("latency-idle")
    stack = TaskhubStack(ctx.processes, ctx.threads).start()
    try:
        stack.wait_ready()
        _send_probes(warm, 5, IDLE_RATE, threading.Event())
        _wait_finished(warm, 5)
        time.sleep(1.0)
        _send_probes(tag, count, IDLE_RATE, threading.Event())
        _wait_finished(tag, count)
        values = _latencies_ms(tag)
    finally:
        stack.stop()
        delete_tagged(warm)
        delete_tagged(tag)
    ctx.details["latency.idle_ms"] = values
    p50, p99 = percentile(values, 50), percentile(values, 99)
    note = f"{len(values)} probes at {IDLE_RATE:g}/s"
    return [
        at_most(NAME, "idle p50", round(p50, 1), 20, "ms", note=note),
        info(NAME, "idle p99", round(p99, 1), "ms"),
    ]


def under_load(ctx: Context) -> list[Row]:
    count = ctx.n(LOAD_COUNT)
    tag = ctx.tag("latency-load")
    stop = threading.Event()
    prober: list[threading.Thread] = []

    def steer(live: Live) -> None:
        # Probe while the load runs: from its first completion until 90 % of it is done.
        if not prober and live.done > 0:
            thread = threading.Thread(
                target=_send_probes,
                args=(tag, None, LOAD_RATE, stop),
                kwargs={"priority": "critical"},
                daemon=True,
            )
            thread.start()
            prober.append(thread)
        if live.done >= 0.9 * live.count:
            stop.set()

    try:
        load = run_taskhub(ctx, "latency-load", count, on_poll=steer)
        stop.set()
        for thread in prober:
            thread.join(10)
        values = _latencies_ms(tag)
    finally:
        stop.set()
        delete_tagged(tag)
    ctx.details["latency.load_ms"] = values
    if not values:
        return [info(NAME, "under load p99", None, note="the load ended before any probe ran")]
    p50, p99 = percentile(values, 50), percentile(values, 99)
    note = f"{len(values)} probes at {LOAD_RATE:g}/s during {count} no-op at {load.rate:.0f}/s"
    return [
        info(NAME, "under load p50", round(p50, 1), "ms"),
        at_most(NAME, "under load p99", round(p99, 1), 250, "ms", note=note),
    ]


def run(ctx: Context) -> list[Row]:
    return idle(ctx) + under_load(ctx)
