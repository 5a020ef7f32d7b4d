"""Finished tasks over time, per queue: throughput (completed / failed per bucket), wait time
(queued → started) and run time (the last attempt's duration) at p50 and p95, for the queues
dashboard's charts and ``GET /api/metrics/timeseries``.

One SQL query per window, the same on PostgreSQL and SQLite: the rows finished in the window
(``task_finished_idx``: status, completed_at) are put in buckets by their finish time, and each
bucket's percentiles are picked with window functions (nearest rank: the smallest value whose
rank is at least p × n), which both databases have — PostgreSQL's ``percentile_cont`` has no
SQLite counterpart. Only the conversion of a timestamp to epoch seconds differs.

A task row keeps the times of its latest attempt, so a bucket's wait and run times are those of
the tasks that *finished* in it. Wait time is counted when the attempt that finished was started
after it was queued (a task lost and failed without starting again has none); run time is
counted for completed tasks only, like ``taskhub_task_duration_seconds``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone

from ..definitions.registry import declared_queues
from ..models import Task, TaskStatus
from .analytics import Snapshot


@dataclass(frozen=True)
class Window:
    """A span of time shown as ``buckets`` equal buckets, the last one holding now."""

    name: str
    bucket_seconds: int
    buckets: int
    #: how long one process reuses a computed series (a bucket of the 1 d window is 15 min)
    cache_seconds: float


WINDOWS = {
    "1h": Window("1h", bucket_seconds=60, buckets=60, cache_seconds=10.0),
    "1d": Window("1d", bucket_seconds=900, buckets=96, cache_seconds=300.0),
}
PERCENTILES = (("P50", 0.5), ("P95", 0.95))
SERIES = ("completed", "failed", "waitP50", "waitP95", "runP50", "runP95")

#: A timestamp column as seconds since the epoch, and as whole seconds (what buckets are cut on:
#: their bounds are whole seconds, and a float near a bound could fall on the wrong side of it).
#: Django stores SQLite datetimes as UTC text ("YYYY-MM-DD HH:MM:SS.ffffff"), which julianday()
#: and strftime() read; 2440587.5 is 1970-01-01 as a Julian day.
_EPOCH_SECONDS = {
    "postgresql": "EXTRACT(EPOCH FROM {column})",
    "sqlite": "((julianday({column}) - 2440587.5) * 86400.0)",
}
_WHOLE_EPOCH_SECONDS = {
    "postgresql": "FLOOR(EXTRACT(EPOCH FROM {column}))",
    "sqlite": "CAST(strftime('%%s', {column}) AS INTEGER)",
}

_QUERY = """
WITH finished AS (
    SELECT queue, status,
           FLOOR(({completed_whole} - %s) / %s) AS slot,
           CASE WHEN started_at >= queued_at THEN {started} - {queued} END AS wait,
           CASE WHEN status = %s THEN duration END AS run
    FROM {table}
    WHERE status IN (%s, %s) AND completed_at >= %s AND completed_at < %s
), ranked AS (
    SELECT queue, slot, status, wait, run,
           ROW_NUMBER() OVER (PARTITION BY queue, slot ORDER BY wait IS NULL, wait) AS wait_rank,
           COUNT(wait) OVER (PARTITION BY queue, slot) AS wait_n,
           ROW_NUMBER() OVER (PARTITION BY queue, slot ORDER BY run IS NULL, run) AS run_rank,
           COUNT(run) OVER (PARTITION BY queue, slot) AS run_n
    FROM finished
)
SELECT queue, slot,
       SUM(CASE WHEN status = %s THEN 1 ELSE 0 END),
       SUM(CASE WHEN status = %s THEN 1 ELSE 0 END),
       MIN(CASE WHEN wait_rank >= 0.5 * wait_n THEN wait END),
       MIN(CASE WHEN wait_rank >= 0.95 * wait_n THEN wait END),
       MIN(CASE WHEN run_rank >= 0.5 * run_n THEN run END),
       MIN(CASE WHEN run_rank >= 0.95 * run_n THEN run END)
FROM ranked
GROUP BY queue, slot
"""


def _sql() -> str:
    epoch = _EPOCH_SECONDS.get(connection.vendor)
    if epoch is None:  # the databases taskhub is built and tested for
        raise NotImplementedError(f"time series need PostgreSQL or SQLite, not {connection.vendor}")
    whole = _WHOLE_EPOCH_SECONDS[connection.vendor]
    return _QUERY.format(
        table=connection.ops.quote_name(Task._meta.db_table),
        completed_whole=whole.format(column="completed_at"),
        started=epoch.format(column="started_at"),
        queued=epoch.format(column="queued_at"),
    )


def window_bounds(window: Window, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the window: whole buckets, aligned on the epoch, the last holding now."""
    size = window.bucket_seconds
    last = math.floor(now.timestamp() / size) * size
    start = last - (window.buckets - 1) * size
    utc = dt.UTC
    return dt.datetime.fromtimestamp(start, utc), dt.datetime.fromtimestamp(last + size, utc)


def compute(window: Window, now: dt.datetime | None = None) -> dict[str, Any]:
    """Every queue's series over ``window`` (declared queues, and any other that finished a
    task in it): seconds rounded to the millisecond, ``None`` where a bucket has no value."""
    start, end = window_bounds(window, now or timezone.now())
    adapt = connection.ops.adapt_datetimefield_value
    done, failed = TaskStatus.COMPLETED.value, TaskStatus.FAILED.value
    params = [
        int(start.timestamp()),
        window.bucket_seconds,
        done,
        done,
        failed,
        adapt(start),
        adapt(end),
        done,
        failed,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_sql(), params)
        rows = cursor.fetchall()
    queues = {name: _empty(name, window.buckets) for name in declared_queues()}
    for queue, slot, *values in rows:
        series = queues.setdefault(queue, _empty(queue, window.buckets))
        index = int(slot)
        if not 0 <= index < window.buckets:
            continue  # the clock moved between the bounds and the query
        for field, value in zip(SERIES, values, strict=True):
            if field in ("completed", "failed"):
                series[field][index] = int(value or 0)
            elif value is not None:
                series[field][index] = round(float(value), 3)
    size = dt.timedelta(seconds=window.bucket_seconds)
    return {
        "window": window.name,
        "bucketSeconds": window.bucket_seconds,
        "from": start,
        "to": end,
        "buckets": [start + i * size for i in range(window.buckets)],
        "queues": [queues[name] for name in sorted(queues)],
    }


def _empty(queue: str, buckets: int) -> dict[str, Any]:
    series: dict[str, Any] = {"queue": queue}
    for field in SERIES:
        series[field] = [0 if field in ("completed", "failed") else None] * buckets
    return series


_snapshots = {
    name: Snapshot(lambda w=window: compute(w), ttl=window.cache_seconds)
    for name, window in WINDOWS.items()
}


def series(window: str, queue: str | None = None) -> dict[str, Any]:
    """The (briefly cached) series of the window named ``window`` (a key of :data:`WINDOWS`),
    of every queue or of ``queue`` alone."""
    data = _snapshots[window].get()
    if queue is None:
        return data
    found = [q for q in data["queues"] if q["queue"] == queue]
    if not found:
        found = [_empty(queue, WINDOWS[window].buckets)]
    return {**data, "queues": found}


def known_queue(queue: str) -> bool:
    """Declared, or named by a task row (a queue of tasks declared elsewhere, or removed)."""
    return queue in declared_queues() or Task.objects.filter(queue=queue).exists()


def clear() -> None:
    for snapshot in _snapshots.values():
        snapshot.clear()
