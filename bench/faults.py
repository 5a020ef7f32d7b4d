"""Fault drills (``--faults``), each during a 10,000-task run on 2 worker processes × 8 threads:

- kill9: kill -9 a worker process five times. Dramatiq's main process then stops its other
  worker and exits; the harness restarts it, as systemd or Kubernetes would.
- flushall: FLUSHALL the Redis — a PRIVATE redis-server on a free port started for this drill,
  never the shared one. The record of handler starts lives on the shared Redis meanwhile.
- pg_restart: stop the local PostgreSQL cluster for 30 s, then start it (always, in a finally).
  This disturbs every other user of that server: run it on a quiet machine.
- schedulers: two ``runscheduler`` processes on a per-second cron (skipped until it exists).

Each drill checks: 0 tasks lost (all completed); duplicates — handler starts beyond the first,
recorded by the task itself — no more than the attempts in flight at the faults (and only
those); no row left queued/running; recovery (the last task that was in flight at the fault
finished) within 90 s; after PostgreSQL returns, throughput back to ≥ 0.9 × the rate before the
outage within 60 s.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import redis
from django.db import connection

from .core import Context, Live, Row, Skip, at_most, delete_tagged, info, is_postgres, run_taskhub
from .procs import start_private_redis, wait_for

logger = logging.getLogger("bench")
NAME = "faults"
COUNT = 10_000
DRILLS = ("kill9", "flushall", "pg_restart", "schedulers")
RECOVERY_LIMIT = 90.0
PG_DOWN_S = 30.0
BACK_WITHIN_S = 60.0
STALL_TIMEOUT = 180.0


class Drill:
    """One run of fault tasks, and what each fault had in flight."""

    def __init__(self, ctx: Context, name: str, redis_url: str | None = None):
        self.ctx, self.name = ctx, name
        self.count = ctx.n(COUNT)
        # --quick runs 10× fewer tasks, each 10× longer: the run lasts as long, so the
        # faults still land in the middle of it.
        self.seconds = 0.1 if ctx.quick else 0.01
        self.tag = ctx.tag(f"fault-{name}")
        self.record_key = f"{os.environ['TASKHUB_KEY_PREFIX']}:bench:runs:{self.tag}"
        self.recorder = redis.Redis.from_url(os.environ["REDIS_URL"])
        self.redis_url = redis_url or os.environ["REDIS_URL"]
        self.faults: list[dict] = []

    @property
    def payload(self) -> dict:
        return {"seconds": self.seconds, "record": self.record_key}

    def in_flight_rows(self) -> list[tuple[str, int]]:
        from taskhub.models import Task

        rows = Task.objects.filter(correlation_id=self.tag, status__in=["queued", "running"])
        return [(str(i), a) for i, a in rows.values_list("id", "attempt")]

    def run(self, on_poll, env: dict[str, str] | None = None, supervised: bool = False):
        env = {"BENCH_RECORD_REDIS_URL": os.environ["REDIS_URL"], **(env or {})}
        return run_taskhub(
            self.ctx,
            f"fault-{self.name}",
            self.count,
            task="bench.fault",
            payload=self.payload,
            env=env,
            on_poll=on_poll,
            supervised=supervised,
            stall_timeout=STALL_TIMEOUT,
            keep_rows=True,
            tag=self.tag,
        )

    def verdict(self, result=None, error: str = "") -> list[Row]:
        """The rows every drill reports, from the task rows and the record of handler starts."""
        from taskhub.models import Task

        m = f"{NAME}.{self.name}"
        statuses = dict(
            Counter(Task.objects.filter(correlation_id=self.tag).values_list("status", flat=True))
        )
        completed = statuses.get("completed", 0)
        starts = Counter(
            v.decode().split(":")[0] for v in self.recorder.lrange(self.record_key, 0, -1)
        )
        extra_starts = {t: n - 1 for t, n in starts.items() if n > 1}
        allowed = sum(len(f["in_flight"]) for f in self.faults)
        allowed_ids = set().union(*(f["in_flight"] for f in self.faults)) if self.faults else set()
        stray = set(extra_starts) - allowed_ids
        left = statuses.get("queued", 0) + statuses.get("running", 0)
        rows = [
            at_most(
                m,
                "lost",
                self.count - completed,
                0,
                "tasks",
                note=error or f"{len(self.faults)} faults; statuses {statuses}",
            ),
            Row(
                m,
                "duplicate starts",
                sum(extra_starts.values()),
                "starts",
                f"≤ {allowed} in flight",
                sum(extra_starts.values()) <= allowed and not stray,
                note=f"{len(stray)} outside the in-flight sets" if stray else "",
            ),
            at_most(m, "left queued/running", left, 0, "rows"),
        ]
        recoveries = [self._recovery(f) for f in self.faults]
        known = [r for r in recoveries if r is not None]
        if known:
            rows.append(
                at_most(
                    m,
                    "recovery (worst)",
                    round(max(known), 1),
                    RECOVERY_LIMIT,
                    "s",
                    note="fault → last in-flight task recorded done",
                )
            )
        self.ctx.details[m] = {
            "statuses": statuses,
            "faults": [
                {**f, "in_flight": len(f["in_flight"]), "affected": len(f["affected"])}
                for f in self.faults
            ],
            "recoveries_s": recoveries,
            "duplicates": extra_starts,
            "run": result.summary() if result else None,
        }
        return rows

    def _recovery(self, fault: dict) -> float | None:
        """Seconds from the fault (or the end of an outage) until the last task that was in
        flight at it was recorded finished; None if one never finished."""
        from django.db.models import Max

        from taskhub.models import Task

        ids = [t for t, _ in fault["affected"]]
        if not ids:
            return 0.0
        rows = Task.objects.filter(id__in=ids)
        if rows.exclude(status="completed").exists():
            return None
        # updated_at is when the outcome reached the database (completed_at is when the handler
        # ended, which during an outage can be long before anyone can see it).
        last = rows.aggregate(last=Max("updated_at"))["last"]
        return max(0.0, last.timestamp() - fault.get("back_at", fault["at"]))

    def cleanup(self) -> None:
        try:
            delete_tagged(self.tag)
        except Exception as exc:
            logger.warning("could not remove drill rows: %s", exc)
        self.recorder.delete(self.record_key)


def _worker_id(pid: int) -> str | None:
    from taskhub.models import WorkerProcess

    row = WorkerProcess.objects.filter(pid=pid).order_by("-started_at").first()
    return row.id if row else None


# -- kill -9 --------------------------------------------------------------------------------------


def kill9(ctx: Context) -> list[Row]:
    from taskhub.engine.claims import claim_holders

    drill = Drill(ctx, "kill9")
    marks = [0.1, 0.25, 0.4, 0.55, 0.7]
    restarts: list[float] = []
    due_since: dict[int, float] = {}

    def on_poll(live: Live) -> None:
        stack = live.stack
        # The supervisor: a worker main process that exited is started again.
        for proc in list(stack.workers):
            if not proc.alive():
                proc.stop(timeout=1)
                stack.workers.remove(proc)
                stack.start_workers()
                restarts.append(time.time())
        for proc in stack.dispatchers:
            if not proc.alive():
                raise RuntimeError(f"the dispatcher died:\n{proc.tail()}")
        due = len(drill.faults) < len(marks) and live.done >= marks[len(drill.faults)] * live.count
        if not due or len(stack.worker_pids()) < ctx.processes:
            return
        due_since.setdefault(len(drill.faults), time.monotonic())
        # Kill the busiest worker process (a kill with nothing in flight proves little); if none
        # is busy yet — one just restarted — wait a few seconds for it.
        rows = drill.in_flight_rows()
        holders = claim_holders(rows)
        ids = {pid: _worker_id(pid) for pid in stack.worker_pids()}
        busy = Counter(h for h in holders if h)
        victim = max(ids, key=lambda pid: busy.get(ids[pid], 0))
        waited = time.monotonic() - due_since[len(drill.faults)]
        if ids[victim] is None or (busy.get(ids[victim], 0) == 0 and waited < 5):
            return
        os.kill(victim, signal.SIGKILL)
        at = time.time()
        worker_id = ids[victim]
        # What it had in flight, read after the kill: a dead process claims nothing more.
        rows = drill.in_flight_rows()
        holders = claim_holders(rows)
        in_flight = {t for (t, _), h in zip(rows, holders, strict=True) if h == worker_id}
        drill.faults.append({"at": at, "pid": victim, "in_flight": in_flight, "affected": rows})
        logger.info("kill -9 %d with %d attempts in flight", victim, len(in_flight))

    result, error = None, ""
    try:
        result = drill.run(on_poll, supervised=True)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    try:
        rows = drill.verdict(result, error)
        kills = len(drill.faults)
        rows.append(
            Row(
                f"{NAME}.kill9",
                "kills",
                kills,
                "",
                f"= {len(marks)}",
                kills == len(marks),
                note=f"{len(restarts)} supervisor restarts",
            )
        )
        return rows
    finally:
        drill.cleanup()


# -- FLUSHALL -------------------------------------------------------------------------------------


def flushall(ctx: Context) -> list[Row]:
    from django.conf import settings
    from django.test import override_settings

    server, url = start_private_redis()
    try:
        with override_settings(TASKHUB={**settings.TASKHUB, "REDIS_URL": url}):
            drill = Drill(ctx, "flushall", redis_url=url)

            def on_poll(live: Live) -> None:
                if drill.faults or live.done < 0.3 * live.count:
                    return
                rows = drill.in_flight_rows()
                redis.Redis.from_url(url).flushall()
                at = time.time()
                # In flight at the flush: queued/running just before it or still just after.
                rows = sorted(set(rows) | set(drill.in_flight_rows()))
                drill.faults.append({"at": at, "in_flight": {t for t, _ in rows}, "affected": rows})
                logger.info("FLUSHALL with %d rows queued/running", len(rows))

            result, error = None, ""
            try:
                result = drill.run(on_poll, env={"REDIS_URL": url})
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            try:
                return drill.verdict(result, error)
            finally:
                drill.cleanup()
    finally:
        server.stop(timeout=5)


# -- PostgreSQL restart ---------------------------------------------------------------------------

_pg_stopped = False


def _cluster() -> tuple[str, str] | None:
    """(version, name) of the local cluster pg_ctlcluster manages, if any."""
    root = Path("/etc/postgresql")
    if shutil.which("pg_ctlcluster") is None or not root.is_dir():
        return None
    versions = sorted(p.name for p in root.iterdir() if (p / "main").is_dir())
    return (versions[-1], "main") if versions else None


def _pg_ctl(action: str) -> None:
    version, name = _cluster()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action],
        check=True,
        capture_output=True,
        timeout=120,
    )


def ensure_postgres_running() -> None:
    """Called in bench.run's finally too: PostgreSQL is never left stopped by the bench."""
    global _pg_stopped
    if not _pg_stopped:
        return
    for _ in range(3):
        try:
            _pg_ctl("start")
            _pg_stopped = False
            return
        except subprocess.CalledProcessError as exc:
            if b"already running" in (exc.stderr or b"") + (exc.stdout or b""):
                _pg_stopped = False
                return
            logger.error("could not start PostgreSQL: %s", exc.stderr)
            time.sleep(2)


def _pg_accepts() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode == 0


def _completion_rate(tag: str, start: float, end: float) -> float:
    from taskhub.models import Task

    lo = dt.datetime.fromtimestamp(start, dt.UTC)
    hi = dt.datetime.fromtimestamp(end, dt.UTC)
    n = Task.objects.filter(correlation_id=tag, completed_at__gte=lo, completed_at__lt=hi).count()
    return n / (end - start) if end > start else 0.0


def pg_restart(ctx: Context) -> list[Row]:
    global _pg_stopped
    if not is_postgres():
        raise Skip("needs PostgreSQL")
    host = connection.settings_dict.get("HOST") or "127.0.0.1"
    if _cluster() is None or host not in ("127.0.0.1", "localhost", "::1"):
        raise Skip("needs a local PostgreSQL cluster managed by pg_ctlcluster")
    drill = Drill(ctx, "pg_restart")

    def on_poll(live: Live) -> None:
        global _pg_stopped
        if drill.faults or live.done < 0.3 * live.count or live.done == 0:
            return
        rows = drill.in_flight_rows()
        connection.close()
        stopped_at = time.time()
        _pg_stopped = True
        try:
            _pg_ctl("stop")
            logger.info("PostgreSQL stopped; waiting %.0fs", PG_DOWN_S)
            time.sleep(PG_DOWN_S)
        finally:
            ensure_postgres_running()
            wait_for(_pg_accepts, 60, "PostgreSQL to accept connections", interval=0.2)
        back_at = time.time()
        drill.faults.append(
            {
                "at": stopped_at,
                "back_at": back_at,
                "in_flight": {t for t, _ in rows},
                "affected": rows,
            }
        )

    result, error = None, ""
    try:
        result = drill.run(on_poll)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        ensure_postgres_running()
    try:
        wait_for(_pg_accepts, 60, "PostgreSQL to accept connections", interval=0.5)
        rows = drill.verdict(result, error)
        if drill.faults:
            rows.append(_throughput_back(drill, drill.faults[0]))
        return rows
    finally:
        drill.cleanup()


def _throughput_back(drill: Drill, fault: dict) -> Row:
    """Seconds after PostgreSQL returned until a 2-second window ran at ≥ 0.9 × the rate
    before the outage (both from the rows' completion times)."""
    from django.db.models import Min

    from taskhub.models import Task

    m, window = f"{NAME}.pg_restart", 2.0
    first = Task.objects.filter(correlation_id=drill.tag).aggregate(t=Min("completed_at"))["t"]
    before = _completion_rate(drill.tag, first.timestamp(), fault["at"]) if first else 0.0
    back = fault["back_at"]
    t = back
    while t <= back + BACK_WITHIN_S:
        if _completion_rate(drill.tag, t, t + window) >= 0.9 * before:
            return at_most(
                m,
                "throughput ≥ 0.9× again after",
                round(t - back, 1),
                BACK_WITHIN_S,
                "s",
                note=f"rate before {before:.0f}/s",
            )
        t += 0.5
    return Row(
        m,
        "throughput ≥ 0.9× again after",
        None,
        "s",
        f"≤ {BACK_WITHIN_S:g}",
        False,
        note=f"not within {BACK_WITHIN_S:g}s (rate before {before:.0f}/s)",
    )


# -- two schedulers -------------------------------------------------------------------------------


def schedulers(ctx: Context) -> list[Row]:
    """Two ``runscheduler`` processes on a per-second cron during the run: every slot must
    produce exactly one task (the runs table is unique per slot; the tasks are what count)."""
    import sys

    from django.core.management import call_command, get_commands
    from django.db.models import Q

    from taskhub.models import Task

    from .procs import MANAGE, Proc

    if "runscheduler" not in get_commands():
        raise Skip("not available yet (no runscheduler command)")
    name = f"bench-{ctx.run_id}"
    try:
        call_command(
            "taskhub", "schedule-add", name, "--task", "bench.probe", "--cron", "* * * * * *"
        )
    except BaseException as exc:  # SystemExit from the CLI's fail(), or a changed CLI
        raise Skip(f"could not add a per-second schedule: {exc}") from None
    drill = Drill(ctx, "schedulers")
    since = dt.datetime.now(dt.UTC)
    procs = [Proc("scheduler", [sys.executable, MANAGE, "runscheduler"]) for _ in range(2)]
    result, error = None, ""
    try:
        result = drill.run(lambda live: None)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        for proc in procs:
            proc.stop(timeout=15)
    try:
        from taskhub.models import ScheduleRun

        runs = ScheduleRun.objects.filter(schedule__name=name)
        slots = runs.values("slot").distinct().count()
        tasks = Task.objects.filter(name="bench.probe", created_at__gte=since)
        fired = tasks.count()
        elapsed = (dt.datetime.now(dt.UTC) - since).total_seconds()
        rows = drill.verdict(result, error)
        rows += [
            at_most(
                f"{NAME}.schedulers",
                "tasks beyond one per slot",
                fired - slots,
                0,
                note=f"{fired} tasks for {slots} slots in {elapsed:.0f}s",
            ),
            Row(f"{NAME}.schedulers", "slots fired", slots, "", "> 0", slots > 0),
        ]
        return rows
    finally:
        drill.cleanup()
        # The schedulers also fire the project's own crons while they run: those tasks are the
        # drill's too, and a pending one would make the next run refuse the database.
        Task.objects.filter(created_at__gte=since).filter(
            Q(name="bench.probe") | Q(correlation_id__startswith="schedule:")
        ).delete()
        try:
            call_command("taskhub", "schedule-delete", name)
        except BaseException as exc:
            logger.warning("could not delete schedule %s: %s", name, exc)


DRILL_FUNCS = {
    "kill9": kill9,
    "flushall": flushall,
    "pg_restart": pg_restart,
    "schedulers": schedulers,
}


def run(ctx: Context, drills: tuple[str, ...] = DRILLS) -> list[Row]:
    rows: list[Row] = []
    for drill in drills:
        try:
            rows += DRILL_FUNCS[drill](ctx)
        except Skip as exc:
            rows.append(info(f"{NAME}.{drill}", "drill", None, note=f"skipped: {exc}"))
    return rows
