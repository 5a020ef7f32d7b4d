"""What every measure shares: the result rows, the run context, and the two batch runners —
``run_taskhub`` and ``run_bare`` — that time the same work on both sides the same way.

Fair timing: the work is loaded with the workers stopped (taskhub: ``schedule_many`` rows; bare:
messages), then the workers start, and the clock runs from the first completion seen to the
last (taskhub: polling the database; bare: polling the broker's queue size). The rate is the
completions inside that window divided by the window, so start-up never counts.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from django.db import DatabaseError, InterfaceError, connection

from .procs import BareWorkers, Profiler, TaskhubStack

logger = logging.getLogger("bench")
POLL_INTERVAL = 0.05
TAG_PREFIX = "bench-run-"


class Skip(Exception):
    """A measure that can't run here (yet): reported as skipped, never as a failure."""


@dataclass
class Row:
    """One line of the results table."""

    measure: str
    metric: str
    value: float | int | str | None
    unit: str = ""
    target: str = ""  # e.g. "≥ 0.75"; empty when reported for information
    ok: bool | None = None  # None: no target, or skipped
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.ok is None:
            return "skip" if self.value is None else ""
        return "ok" if self.ok else "MISSED"


def at_least(measure: str, metric: str, value: float, limit: float, unit: str = "", **kw) -> Row:
    return Row(measure, metric, value, unit, f"≥ {limit:g}", value >= limit, **kw)


def at_most(measure: str, metric: str, value: float, limit: float, unit: str = "", **kw) -> Row:
    return Row(measure, metric, value, unit, f"≤ {limit:g}", value <= limit, **kw)


def info(measure: str, metric: str, value: Any, unit: str = "", **kw) -> Row:
    return Row(measure, metric, value, unit, **kw)


@dataclass
class Context:
    """Options of this invocation and what measures hand each other."""

    quick: bool = False
    processes: int = 2
    threads: int = 8
    profile_dir: Path | None = None
    keep_filler: bool = False
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    cache: dict[str, Any] = field(default_factory=dict)
    #: per chart line: name → [(seconds, completed)]
    series: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    #: anything else worth keeping in the JSON (raw latencies, fault timelines …)
    details: dict[str, Any] = field(default_factory=dict)

    def n(self, full: int) -> int:
        """A count, shrunk 10× by --quick."""
        return max(1, full // 10) if self.quick else full

    def tag(self, label: str) -> str:
        """A correlation id that marks one batch's rows."""
        return f"{TAG_PREFIX}{self.run_id}-{label}-{uuid.uuid4().hex[:6]}"

    @property
    def bare_namespace(self) -> str:
        return f"{os.environ['TASKHUB_KEY_PREFIX']}-bare"

    @property
    def shape(self) -> str:
        return f"{self.processes}×{self.threads}"


@dataclass
class RunResult:
    side: str  # "taskhub" | "bare"
    label: str
    count: int
    completed: int
    rate: float  # completions per second between the first and the last one seen
    window_s: float
    first_s: float  # from starting the workers to the first completion
    wall_s: float  # from starting the workers to the last completion
    series: list[tuple[float, int]]
    statuses: dict[str, int] = field(default_factory=dict)
    commits: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def commits_per_task(self) -> float | None:
        return None if self.commits is None else self.commits / max(self.count, 1)

    def summary(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "series"}
        data["commits_per_task"] = self.commits_per_task
        return data


# -- the database side ----------------------------------------------------------------------------


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def task_table() -> str:
    from taskhub.models import Task

    return Task._meta.db_table


def remaining_active() -> int:
    """Unfinished rows in the whole table, in one cheap statement: both counts match the
    partial indexes (ready rows, in-flight rows), so they stay fast however big the table is."""
    t = task_table()
    sql = (
        f"SELECT (SELECT count(*) FROM {t} WHERE status IN ('pending', 'retrying')) + "
        f"(SELECT count(*) FROM {t} WHERE status IN ('queued', 'running'))"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return int(cursor.fetchone()[0])


def database_counters() -> tuple[int, int] | None:
    """(commits, row writes) of this database from pg_stat_database, with this process's own
    transactions flushed to the statistics first (a backend reports them when it exits)."""
    if not is_postgres():
        return None
    import psycopg

    connection.close()
    time.sleep(0.5)
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"],
        host=settings.get("HOST") or "127.0.0.1",
        port=settings.get("PORT") or 5432,
        user=settings.get("USER") or None,
        password=settings.get("PASSWORD") or None,
        autocommit=True,
    ) as conn:
        row = conn.execute(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted "
            "FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]), int(row[1])


def commit_counter() -> int | None:
    """pg_stat_database.xact_commit of this database (see database_counters)."""
    counters = database_counters()
    return None if counters is None else counters[0]


def status_counts(tag: str) -> dict[str, int]:
    from django.db.models import Count

    from taskhub.models import Task

    rows = Task.objects.filter(correlation_id=tag).values("status").annotate(n=Count("id"))
    return {r["status"]: r["n"] for r in rows}


def delete_tagged(tag: str, *, like: bool = False) -> int:
    """Remove a batch's rows and everything hanging off them."""
    from taskhub.models import DeadLetter, TaskEvent, TaskLog

    op = "LIKE" if like else "="
    t = task_table()
    with connection.cursor() as cursor:
        if is_postgres():
            # The run just wrote these rows into tables analysed empty at its start; with those
            # statistics the planner may scan the events once per deleted task (minutes).
            cursor.execute(f"ANALYZE {t}, {TaskEvent._meta.db_table}")
        for model in (TaskEvent, TaskLog, DeadLetter):
            cursor.execute(
                f"DELETE FROM {model._meta.db_table} WHERE task_id IN "
                f"(SELECT id FROM {t} WHERE correlation_id {op} %s)",
                [tag],
            )
        cursor.execute(f"DELETE FROM {t} WHERE correlation_id {op} %s", [tag])
        deleted = cursor.rowcount
    return deleted


def vacuum_analyze() -> None:
    from taskhub.models import Task, TaskEvent

    if not is_postgres():
        return
    with connection.cursor() as cursor:
        for model in (Task, TaskEvent):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")


def prepare_database() -> None:
    """Remove what an interrupted earlier run left; refuse a database with real unfinished work
    (the bench counts unfinished rows of the whole table)."""
    from taskhub.models import ACTIVE_STATUSES, Task

    delete_tagged(TAG_PREFIX + "%", like=True)
    foreign = Task.objects.filter(status__in=ACTIVE_STATUSES).count()
    if foreign:
        raise SystemExit(
            f"the database has {foreign} unfinished tasks that aren't the bench's; "
            "run the bench on a database of its own (unset DATABASE_URL for taskhub_bench)"
        )
    vacuum_analyze()


def preload(task: str, payload: dict, count: int, tag: str, chunk: int = 5000) -> None:
    """Schedule the batch while no worker runs (schedule_many, in chunks)."""
    from taskhub import schedule_many

    done = 0
    while done < count:
        size = min(chunk, count - done)
        schedule_many(task, [payload] * size, correlation_id=tag)
        done += size


# -- watching a batch -----------------------------------------------------------------------------


@dataclass
class Live:
    """What a measure's hook sees at each poll of a running batch."""

    count: int
    done: int
    elapsed: float
    stack: TaskhubStack | BareWorkers
    tag: str = ""
    started_at: float = 0.0  # time.time() when the workers were started


class Stalled(RuntimeError):
    pass


@dataclass
class Watch:
    series: list[tuple[float, int]]
    first: tuple[float, int] | None
    last: tuple[float, int] | None
    polls: int

    @property
    def window(self) -> float:
        if not self.first or not self.last:
            return 0.0
        return self.last[0] - self.first[0]

    @property
    def rate(self) -> float:
        if not self.first or not self.last or self.window <= 0:
            return 0.0
        return (self.last[1] - self.first[1]) / self.window


def watch(
    done_fn: Callable[[], int],
    count: int,
    live: Live,
    *,
    on_poll: Callable[[Live], None] | None = None,
    check_alive: bool = True,
    stall_timeout: float = 120.0,
    interval: float = POLL_INTERVAL,
) -> Watch:
    """Poll ``done_fn`` until ``count`` are done; transient store errors are waited out (the
    fault drills take the database and Redis away on purpose)."""
    t0 = time.monotonic()
    series: list[tuple[float, int]] = []
    first = last = None
    polls, last_done, last_progress = 0, -1, t0
    while True:
        now = time.monotonic()
        try:
            done = done_fn()
            polls += 1
        except (DatabaseError, InterfaceError, redis.RedisError, OSError) as exc:
            logger.debug("poll failed: %s", exc)
            connection.close()
            done = None
        now = time.monotonic()
        if done is not None:
            series.append((now - t0, done))
            if done > last_done:
                last_done, last_progress = done, now
                last = (now - t0, done)
            if first is None and done > 0:
                first = (now - t0, done)
            live.done = done
        live.elapsed = now - t0
        if on_poll is not None:
            on_poll(live)
        if done is not None and done >= count:
            return Watch(series, first, last, polls)
        if check_alive:
            live.stack.check_alive()
        if now - last_progress > stall_timeout:
            raise Stalled(f"no progress for {stall_timeout:.0f}s at {last_done}/{count} done")
        time.sleep(interval)


def _downsample(series: list[tuple[float, int]], points: int = 400) -> list[tuple[float, int]]:
    step = max(1, len(series) // points)
    return [(round(t, 3), d) for t, d in series[::step]] + series[-1:]


# -- the two sides --------------------------------------------------------------------------------


def run_taskhub(
    ctx: Context,
    label: str,
    count: int,
    *,
    task: str = "bench.noop",
    payload: dict | None = None,
    env: dict[str, str] | None = None,
    on_poll: Callable[[Live], None] | None = None,
    supervised: bool = False,
    stall_timeout: float = 120.0,
    keep_rows: bool = False,
    tag: str | None = None,
    embedded: bool = False,
) -> RunResult:
    """``count`` tasks through rundramatiq (ctx.processes × ctx.threads) and one dispatcher —
    or, ``embedded``, no dispatcher process: the worker processes dispatch (one leads)."""
    tag = tag or ctx.tag(label)
    preload(task, payload or {}, count, tag)
    commits_before = commit_counter()
    if embedded:
        env = {**(env or {}), "TASKHUB_EMBEDDED_DISPATCHER": "1"}
    stack = TaskhubStack(ctx.processes, ctx.threads, env)
    profilers: list[Profiler] = []
    started = time.time()
    stack.start(dispatchers=0 if embedded else 1)
    finished = False
    try:
        if ctx.profile_dir is not None:
            profilers = [
                Profiler(
                    stack.workers[0].pid, ctx.profile_dir / f"{label}-workers.speedscope.json"
                ),
                *(
                    Profiler(proc.pid, ctx.profile_dir / f"{label}-dispatcher.speedscope.json")
                    for proc in stack.dispatchers
                ),
            ]
        live = Live(count=count, done=0, elapsed=0.0, stack=stack, tag=tag, started_at=started)
        seen = watch(
            lambda: count - remaining_active(),
            count,
            live,
            on_poll=on_poll,
            check_alive=not supervised,
            stall_timeout=stall_timeout,
        )
        finished = True
    finally:
        for profiler in profilers:
            profiler.stop()
        stack.stop()
        if not finished and not keep_rows:
            _forget(tag)
    commits_after = commit_counter()
    commits = None
    if commits_before is not None and commits_after is not None:
        # Less this process's own polls (one autocommit statement each) and the two readings.
        commits = commits_after - commits_before - seen.polls - 1
    result = RunResult(
        side="taskhub",
        label=label,
        count=count,
        completed=0,
        rate=seen.rate,
        window_s=seen.window,
        first_s=seen.first[0] if seen.first else 0.0,
        wall_s=seen.last[0] if seen.last else 0.0,
        series=_downsample(seen.series),
        commits=commits,
        extra={"tag": tag},
    )
    result.statuses = status_counts(tag)
    result.completed = result.statuses.get("completed", 0)
    result.extra.update(_row_timing(tag))
    if not keep_rows:
        delete_tagged(tag)
    return result


def _forget(tag: str) -> None:
    """Remove an unfinished batch: its stuck rows would confuse every later run."""
    try:
        delete_tagged(tag)
    except (DatabaseError, InterfaceError) as exc:
        logger.warning("could not remove batch %s: %s", tag, exc)


def _row_timing(tag: str) -> dict[str, Any]:
    """The same batch timed from its rows: first start to last completion (cross-check)."""
    from django.db.models import Count, Max, Min

    from taskhub.models import Task

    agg = Task.objects.filter(correlation_id=tag, status="completed").aggregate(
        first_start=Min("started_at"), last_done=Max("completed_at"), n=Count("id")
    )
    if not agg["n"] or not agg["first_start"]:
        return {}
    span = (agg["last_done"] - agg["first_start"]).total_seconds()
    return {"rows_span_s": span, "rows_rate": agg["n"] / span if span > 0 else None}


def run_bare(
    ctx: Context,
    label: str,
    count: int,
    *,
    actor: str = "noop",
    args: tuple = (),
    on_poll: Callable[[Live], None] | None = None,
) -> RunResult:
    """``count`` messages through plain Dramatiq (ctx.processes × ctx.threads)."""
    from . import bare

    broker, actors = bare.build(os.environ["REDIS_URL"], ctx.bare_namespace)
    broker.flush(bare.QUEUE)
    for _ in range(count):
        actors[actor].send(*args)
    workers = BareWorkers(ctx.processes, ctx.threads, ctx.bare_namespace)
    started = time.time()
    workers.start()
    try:
        live = Live(count=count, done=0, elapsed=0.0, stack=workers, started_at=started)
        seen = watch(lambda: count - broker.do_qsize(bare.QUEUE), count, live, on_poll=on_poll)
    finally:
        workers.stop()
        broker.flush(bare.QUEUE)
    return RunResult(
        side="bare",
        label=label,
        count=count,
        completed=seen.last[1] if seen.last else 0,
        rate=seen.rate,
        window_s=seen.window,
        first_s=seen.first[0] if seen.first else 0.0,
        wall_s=seen.last[0] if seen.last else 0.0,
        series=_downsample(seen.series),
    )


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 200 samples is the 198th)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]
