"""The combined fault run (``--faults``, or ``python -m bench.run --only chaos [--quick]``).

For ``--chaos-seconds`` (600; 120 with --quick) a seeded mix of ~92 tasks/s (~42/s quick) —
no-ops, slow ones, failing-then-succeeding ones, ones cancelled mid-way (half retried after),
NUL-laden results, small workflows, a per-second cron — runs on ``--processes`` (2) worker
units of 1 process × ``--threads`` (8), a dispatcher and a scheduler, while at seeded random
moments (every ~7 s; ~4.5 s quick; each kind at least once) a worker process is SIGKILLed or
its unit SIGTERMed (2 s grace), the dispatcher or the scheduler is SIGKILLed, the Redis is
flushed, restarted or stalled with DEBUG SLEEP past the lifeline timeout, and every database
session is terminated. A supervisor restarts what died. Then the load stops, the faults stop,
and the stack drains: until every row is finished, no row has finished for DRAIN_STALL_S, or
DRAIN_S has passed.

``--chaos-shape workers`` runs ``rundramatiq`` alone: no dispatcher process, the worker units
dispatch (EMBEDDED_DISPATCHER; one leads by the lease, taskhub.engine.leadership), and the
dispatcher's SIGKILL becomes ``leader-sigkill``: the worker process holding the live lease is
SIGKILLed (its in-flight work counts as a worker kill's). The default ``dispatcher`` shape runs
the units with EMBEDDED_DISPATCHER off.

``--chaos-seed N`` repeats a run's faults (order, times, targets drawn); ``--chaos-leave-out``
drops kinds of work or faults (e.g. ``nul``: to see what the rest finds while one defect is
being fixed); ``--chaos-keep-db`` keeps the database to look at what a run left. The record of
handler starts stays in ``var/bench-chaos/<time>-<run id>/``; the processes' logs in
``var/bench-logs/chaos-*``.

Isolation: a PRIVATE redis-server on a free port (the only one flushed, restarted or stalled)
and a database of its own, ``<DATABASE_URL's name>_chaos``, created (dropped first if an
interrupted run left it), migrated, and dropped at the end; pg_terminate_backend touches only
that database's sessions, never the harness's own. Timings are shortened (SHORT_TIMINGS).

The checker (bench/chaos_check.py) reads the rows and the independent record of handler starts
and ends (bench.tasks.chaos_record: a file per process, outside the engine's path). Figures go
to ``bench/results/<date>-chaos[-workers][-quick].json`` and ``.md``; the seed and every fault
are logged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .chaos_check import FLUSH_GRACE_S, Expectation, Fault, RowState, check, parse_record, summary
from .chaos_load import MIX, TASK, Load
from .chaos_procs import (
    FAULT_KINDS,
    KILL_FAULTS,
    LEADER_SIGKILL,
    ChaosStack,
    Faults,
    PrivateRedis,
    fault_weights,
)
from .core import Context, Row, Skip, at_most, info, is_postgres
from .env import ROOT

logger = logging.getLogger("bench")
NAME = "chaos"
SECONDS, QUICK_SECONDS = 600, 120
TASKS, QUICK_TASKS = 55_000, 5_000
FAULT_GAP_S, QUICK_FAULT_GAP_S = 7.0, 4.5
WARM_UP_S = 5.0
WAIT_FOR_VICTIM_S = 20.0  # a kill waits this long for a process up long enough (chaos_procs)
#: The drain ends when every row is finished, when no row has finished for DRAIN_STALL_S (a
#: stall), or after DRAIN_S: a backlog the faults left is worked off at the machine's pace
#: (~150 tasks/s on a loaded 2-core machine, measured), so the bound is generous and the drain's
#: length and rate are reported.
DRAIN_S = 600.0
DRAIN_STALL_S = 60.0
RECOVERY_LIMIT_S = 60.0
BACKLOG_EVERY_S = 10.0
BOOT_WAIT_S = 120.0
#: Threads per worker unit, at least: the mix keeps ~11 threads in handlers (slow tasks,
#: cancellable ones running until their cancel lands) and kills take units away for ~10 s
#: each. With 2 × 8 the 10-minute run was short of threads (its backlog grew from the first
#: minute); the drill tests recovery, not capacity.
MIN_THREADS = 16
SHUTDOWN_GRACE_MS = 2000  # SIGTERMed units hand back what still runs after this
SHORT_TIMINGS = {
    "LIFELINE_TIMEOUT": 4.0,
    "HEARTBEAT_INTERVAL": 1.0,
    "LIFELINE_INTERVAL": 1.0,
    "REDISPATCH_AFTER": 4.0,
}
STALL_S = int(SHORT_TIMINGS["LIFELINE_TIMEOUT"]) + 3  # DEBUG SLEEP, past the lifeline timeout
CRON_NAME = "bench-chaos"
HARNESS_APP_NAME = "bench-chaos-harness"
RECORD_ROOT = ROOT / "var" / "bench-chaos"


# -- the drill's own database ---------------------------------------------------------------------


def _db_settings() -> dict:
    from django.db import connections

    return connections.settings["default"]


@contextlib.contextmanager
def admin_connection():
    """An autocommit session on the server's ``postgres`` database (never the drill's)."""
    import psycopg

    s = _db_settings()
    with psycopg.connect(
        dbname="postgres",
        host=s.get("HOST") or "127.0.0.1",
        port=s.get("PORT") or 5432,
        user=s.get("USER") or None,
        password=s.get("PASSWORD") or None,
        autocommit=True,
    ) as conn:
        yield conn


def _drop(name: str) -> None:
    from psycopg import sql

    with admin_connection() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def own_database(keep: bool = False):
    """Point this process at a fresh, migrated database of the drill's own (as Django's test
    runner points at a test database), tagging the harness's sessions so that faults spare
    them; yields (name, DATABASE_URL for the child processes); drops it afterwards unless
    ``keep`` (to look at what a run left; the next run drops it first)."""
    from django.core.management import call_command
    from django.db import connections
    from psycopg import sql

    s = _db_settings()
    saved = {"NAME": s["NAME"], "OPTIONS": dict(s.get("OPTIONS") or {})}
    name = f"{s['NAME']}_chaos"
    _drop(name)
    with admin_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    connections.close_all()
    s["NAME"] = name
    s["OPTIONS"] = {**saved["OPTIONS"], "application_name": HARNESS_APP_NAME}
    parts = urlsplit(os.environ["DATABASE_URL"])
    url = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        call_command("migrate", interactive=False, verbosity=0)
        yield name, url
    finally:
        connections.close_all()
        s.update(saved)
        try:
            if keep:
                logger.info("chaos: kept the database %s", name)
            else:
                _drop(name)
        except Exception as exc:  # noqa: BLE001 — reported, the run's figures still count
            logger.warning("could not drop the drill's database %s: %s", name, exc)


# -- the run ------------------------------------------------------------------------------------


class Drill:
    def __init__(
        self,
        ctx: Context,
        seconds: float,
        tasks: int,
        seed: int,
        leave_out: frozenset[str],
        shape: str = "dispatcher",
    ):
        self.ctx, self.seconds, self.seed, self.leave_out = ctx, seconds, seed, leave_out
        self.shape = shape
        self.rate = tasks / seconds
        self.threads = max(ctx.threads, MIN_THREADS)
        self.gap = QUICK_FAULT_GAP_S if ctx.quick else FAULT_GAP_S
        self.fault_rng = random.Random(seed)
        self.load = Load(random.Random(seed + 1), self.rate, ctx.tag(NAME), leave_out)
        self.record_dir = RECORD_ROOT / f"{time.strftime('%Y%m%d-%H%M%S')}-{ctx.run_id}"
        self.faults: list[Fault] = []
        self.log: list[dict[str, Any]] = []
        self.started = 0.0
        self.backlog: list[dict[str, Any]] = []  # _sample_backlog's samples
        self.boot_s: float | None = None
        self.drain_stalled = False

    def plan(self) -> list[tuple[float, str]]:
        """Seeded (time offset, fault kind): every kind once in a shuffled order, then drawn by
        weight, at gaps of 0.5–1.5 × the mean gap."""
        rng = self.fault_rng
        weights = {k: w for k, w in fault_weights(self.shape).items() if k not in self.leave_out}
        kinds = list(weights)
        rng.shuffle(kinds)
        plan, t = [], WARM_UP_S
        while t < self.seconds:
            if not weights:
                break
            kind = kinds.pop(0) if kinds else rng.choices(list(weights), list(weights.values()))[0]
            plan.append((t, kind))
            t += rng.uniform(0.5 * self.gap, 1.5 * self.gap)
        return plan

    def run(self, db_name: str, db_url: str, server: PrivateRedis) -> dict[str, Any]:
        self.record_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "DATABASE_URL": db_url,
            "REDIS_URL": server.url,
            "BROKER_URL": "",
            "TASKHUB_SETTINGS_JSON": json.dumps(
                {**json.loads(os.environ.get("TASKHUB_SETTINGS_JSON") or "{}"), **SHORT_TIMINGS}
            ),
            "BENCH_CHAOS_RECORD_DIR": str(self.record_dir),
        }
        stack = ChaosStack(env, self.ctx.processes, self.threads, SHUTDOWN_GRACE_MS, self.shape)
        faults = Faults(
            stack, server, db_name, self.fault_rng, STALL_S, _in_flight_ids, _leader_holder
        )
        _add_cron()
        threads: list[threading.Thread] = []
        try:
            stack.start()
            self.boot_s = self._wait_for_workers(stack)
            self.started = time.time()
            threads = [
                threading.Thread(
                    target=self.load.feed,
                    args=(self.started, self.seconds),
                    name="chaos-feed",
                    daemon=True,
                ),
                threading.Thread(target=self.load.steer, name="chaos-steer", daemon=True),
            ]
            threads.append(
                threading.Thread(target=self._sample_backlog, name="chaos-backlog", daemon=True)
            )
            for thread in threads:
                thread.start()
            self._disturb(stack, faults)
            self.load.stop_feeding.set()
            threads[0].join(60)
            drained = self._drain(stack)
        finally:
            self.load.stop_feeding.set()
            self.load.abandon.set()
            for thread in threads:
                thread.join(30)
            stack.stop()
        return {
            "drained_in_s": drained,
            "kills": faults.kill_records(),
            "restarts": {r.name: r.restarts for r in stack.roles.values()},
        }

    def _wait_for_workers(self, stack: ChaosStack) -> float | None:
        """The load starts once every worker unit heart-beats: the drill measures recovery,
        not the first boot (~17 s per unit on a loaded 2-core machine)."""
        from django.utils import timezone

        from taskhub.models import WorkerProcess

        t0 = time.time()
        while time.time() - t0 < BOOT_WAIT_S:
            stack.supervise()
            since = timezone.now() - dt.timedelta(seconds=5)
            live = WorkerProcess.objects.filter(
                stopped_at__isnull=True, last_heartbeat_at__gte=since
            ).count()
            if live >= self.ctx.processes:
                return round(time.time() - t0, 1)
            time.sleep(0.5)
        return None

    def _sample_backlog(self) -> None:
        """Every BACKLOG_EVERY_S, the rows not finished by status and the completed count: a
        backlog that grows steadily under load is too little capacity; one that stops going
        down while nothing runs is a stall."""
        from django.db import connection
        from django.db.models import Count

        from taskhub.models import Task

        try:
            while not self.load.abandon.is_set():
                try:
                    counts = dict(
                        Task.objects.values_list("status").annotate(n=Count("id")).order_by()
                    )
                    t, load = round(time.time() - self.started, 1), round(os.getloadavg()[0], 1)
                    self.backlog.append({"t": t, "load": load, **counts})
                except Exception:  # noqa: BLE001 — a terminated session: next sample
                    connection.close()
                self.load.abandon.wait(BACKLOG_EVERY_S)
        finally:
            connection.close()

    def _disturb(self, stack: ChaosStack, faults: Faults) -> None:
        plan = self.plan()
        logger.info(
            "chaos: seed %d, %d faults planned over %.0fs", self.seed, len(plan), self.seconds
        )
        while time.time() - self.started < self.seconds:
            stack.supervise()
            elapsed = time.time() - self.started
            if plan and plan[0][0] <= elapsed and time.time() >= faults.outage_until:
                due, kind = plan.pop(0)
                if not self._inject(faults, kind, last_try=elapsed - due > WAIT_FOR_VICTIM_S):
                    plan.insert(0, (due, kind))  # nothing up long enough yet: wait
            time.sleep(0.1)

    def _inject(self, faults: Faults, kind: str, last_try: bool) -> bool:
        """Inject one fault; False if it found no process to hit and may be tried again."""
        error = ""
        try:
            fault = faults.inject(kind)
        except Exception as exc:  # noqa: BLE001 — logged; the run goes on
            fault, error = None, f"{type(exc).__name__}: {exc}"
        if fault is None and not error and not last_try:
            return False
        entry = {"t": round(time.time() - self.started, 2), "kind": kind}
        if fault is None:
            entry.update(skipped=True, **({"error": error} if error else {}))
        else:
            self.faults.append(fault)
            entry.update(fault.detail, affected=len(fault.affected))
        self.log.append(entry)
        logger.info(
            "chaos: t+%.1fs %s %s",
            entry["t"],
            kind,
            {k: v for k, v in entry.items() if k not in ("t", "kind")},
        )
        return True

    def _drain(self, stack: ChaosStack) -> float | None:
        """Faults over: no more crons, every process up; wait until no row is unfinished."""
        from taskhub.models import ACTIVE_STATUSES, Task

        _stop_cron()
        stack.roles["scheduler"].enabled = False
        if stack.roles["scheduler"].proc is not None:
            stack.roles["scheduler"].proc.stop(timeout=10)
            stack.roles["scheduler"].proc = None
        self.load.stop_steering.set()
        t0 = last_progress = time.time()
        fewest: int | None = None
        while time.time() - t0 < DRAIN_S and time.time() - last_progress < DRAIN_STALL_S:
            stack.supervise()
            try:
                active = Task.objects.filter(status__in=ACTIVE_STATUSES).count()
            except Exception:  # noqa: BLE001
                active = -1
            if active == 0 and not self.load.pending_steering():
                return round(time.time() - t0, 1)
            if active >= 0 and (fewest is None or active < fewest):
                fewest, last_progress = active, time.time()
            time.sleep(0.5)
        self.drain_stalled = time.time() - last_progress >= DRAIN_STALL_S
        return None


def _in_flight_ids() -> list[str]:
    """Rows queued or running now, less those the drill itself cancels and retries."""
    from taskhub.models import Task

    try:
        rows = Task.objects.filter(status__in=["queued", "running"]).exclude(payload__kind="cancel")
        return [str(i) for i in rows.values_list("id", flat=True)]
    except Exception:  # noqa: BLE001 — a fault is never skipped for want of a snapshot
        from django.db import connection

        connection.close()
        return []


def _leader_holder() -> str | None:
    """The holder of the live dispatcher lease in the drill's database (None: nobody leads, or
    the read failed — the fault is tried again)."""
    from taskhub.engine.leadership import current_leader

    try:
        return current_leader()
    except Exception:  # noqa: BLE001
        from django.db import connection

        connection.close()
        return None


def _add_cron() -> None:
    from taskhub.scheduler.schedules import create_schedule

    create_schedule(CRON_NAME, TASK, cron="* * * * * *", payload={"kind": "noop"})


def _stop_cron() -> None:
    from taskhub.scheduler.schedules import disable_schedule

    try:
        disable_schedule(CRON_NAME)  # kept: its runs are what the checker counts
    except Exception as exc:  # noqa: BLE001
        logger.warning("chaos: could not disable the cron: %s", exc)


# -- reading back and checking --------------------------------------------------------------------


def _read_record(directory: Path) -> list:
    marks = []
    for path in sorted(directory.glob("record-*.log")):
        with path.open() as lines:
            marks += parse_record(lines)
    return marks


def _read_rows() -> dict[str, RowState]:
    from taskhub.models import ACTIVE_STATUSES, Task

    rows = {}
    for task_id, status, attempt, kind, updated in Task.objects.values_list(
        "id", "status", "attempt", "payload__kind", "updated_at"
    ).iterator(chunk_size=5000):
        finished = None if status in ACTIVE_STATUSES else updated.timestamp()
        rows[str(task_id)] = RowState(str(task_id), status, attempt, kind or "", finished)
    return rows


def _workflows(run_ids: list[str]) -> dict[str, Any]:
    from taskhub.models import Task
    from taskhub.workflows.models import WorkflowRun

    statuses = Counter(WorkflowRun.objects.filter(id__in=run_ids).values_list("status", flat=True))
    sums = Task.objects.filter(workflow_run_id__in=run_ids, step_key="total", status="completed")
    wrong = sum(1 for r in sums.values_list("result", flat=True) if (r or {}).get("sum") != 5)
    return {
        "runs": len(run_ids),
        "statuses": dict(statuses),
        "not_succeeded": len(run_ids) - statuses.get("succeeded", 0),
        "fan_in_sums_wrong": wrong,
    }


def _cron() -> dict[str, Any]:
    from taskhub.models import ScheduleRun, Task

    tasks = Task.objects.filter(correlation_id=f"schedule:{CRON_NAME}").count()
    slots = ScheduleRun.objects.filter(schedule__name=CRON_NAME).values("slot").distinct().count()
    return {"tasks": tasks, "slots": slots, "beyond_one_per_slot": max(0, tasks - slots)}


def _fill_kill_affected(faults: list[Fault], kills, marks, ledger) -> None:
    """A killed worker's in-flight work, from the record: started there, no outcome yet. A
    killed leader's adds to the rows queued or running at it (dispatching stopped too)."""
    from .chaos_check import FLUSH_GRACE_S, in_flight_at, runs_by_task

    runs = runs_by_task(marks)
    kill_faults = [f for f in faults if f.kind in KILL_FAULTS]  # one kill each, in order
    for fault, kill in zip(kill_faults, kills, strict=False):
        killed = [
            t
            for t, task_runs in runs.items()
            if any(in_flight_at(r, kill, FLUSH_GRACE_S) for r in task_runs)
            and (ledger.get(t) is None or ledger[t].kind != "cancel")
        ]
        before = fault.affected if fault.kind == LEADER_SIGKILL else []
        fault.affected = list(dict.fromkeys([*before, *killed]))


#: What --chaos-leave-out may name: a kind of work, or a fault (of either shape).
LEAVE_OUT_CHOICES = (*(k for k in MIX if k != "noop"), *FAULT_KINDS)
#: The stack in each --chaos-shape, as the results describe it.
SHAPE_NAMES = {
    "dispatcher": "worker units + a dispatcher process",
    "workers": "rundramatiq alone (the units dispatch: embedded dispatcher)",
}


def run(
    ctx: Context,
    seconds: float | None = None,
    seed: int | None = None,
    leave_out: frozenset[str] = frozenset(),
    keep_database: bool = False,
    shape: str = "dispatcher",
) -> list[Row]:
    from django.test import override_settings

    if not is_postgres():
        raise Skip("needs PostgreSQL (its own database, pg_terminate_backend)")
    seconds = seconds or (QUICK_SECONDS if ctx.quick else SECONDS)
    per_second = (QUICK_TASKS / QUICK_SECONDS) if ctx.quick else (TASKS / SECONDS)
    tasks = int(per_second * seconds)
    seed = seed if seed is not None else random.SystemRandom().randrange(1 << 30)
    drill = Drill(ctx, seconds, tasks, seed, leave_out, shape)
    server = PrivateRedis()
    server.start()
    # The harness's own engine calls meet the faults too: their warnings would drown the log.
    engine_log = logging.getLogger("taskhub")
    level = engine_log.level
    engine_log.setLevel(logging.ERROR)
    try:
        from django.conf import settings

        with (
            own_database(keep_database) as (db_name, db_url),
            override_settings(
                TASKHUB={**settings.TASKHUB, **SHORT_TIMINGS, "REDIS_URL": server.url}
            ),
        ):
            outcome = drill.run(db_name, db_url, server)
            data = _collect(drill, outcome)
    finally:
        engine_log.setLevel(level)
        server.stop()
    return _report(ctx, drill, data)


def _collect(drill: Drill, outcome: dict[str, Any]) -> dict[str, Any]:
    from django.db import connection

    connection.close()  # a fresh session: the drill's faults may have ended the last one
    marks = _read_record(drill.record_dir)
    rows = _read_rows()
    ledger = dict(drill.load.ledger)
    for row in rows.values():  # the cron's tasks: the drill didn't schedule them, but expects
        if row.id not in ledger and row.kind:  # them to complete like the others
            ledger[row.id] = Expectation(row.kind)
    _fill_kill_affected(drill.faults, outcome["kills"], marks, ledger)
    findings = check(ledger, rows, marks, outcome["kills"], drill.faults, t0=drill.started)
    nul = Counter(r.status for r in rows.values() if r.kind == "nul")
    return {
        "findings": summary(findings),
        "workflows": _workflows(drill.load.workflow_runs),
        "cron": _cron(),
        "nul_results": dict(nul),
        "cancels": dict(drill.load.cancels),
        "failed_schedule_calls": len(drill.load.failed_calls),
        "failed_schedule_call_examples": drill.load.failed_calls[:5],
        "kinds": dict(Counter(e.kind for e in ledger.values())),
        "drained_in_s": outcome["drained_in_s"],
        "drain_stalled": drill.drain_stalled,
        "restarts": outcome["restarts"],
        "backlog": drill.backlog,
        "boot_s": drill.boot_s,
        "busy_share": _busy_share(marks, drill),
    }


def _busy_share(marks: list, drill: Drill) -> float | None:
    """Handler thread-seconds (from the record) over the thread-seconds the worker units
    offered during the load, dead time after kills included: near 1 the load, not a defect,
    keeps work waiting."""
    starts: dict[tuple[str, int, int], float] = {}
    busy = 0.0
    end_of_load = drill.started + drill.seconds
    for m in sorted(marks, key=lambda m: m.at):
        key = (m.task_id, m.attempt, m.pid)
        if m.mark == "S":
            starts[key] = m.at
        elif key in starts:
            begun = starts.pop(key)
            busy += max(0.0, min(m.at, end_of_load) - begun)
    offered = drill.ctx.processes * drill.threads * drill.seconds
    return round(busy / offered, 2) if offered else None


def _drain_note(data: dict[str, Any], f: dict[str, Any]) -> str:
    if f["left_non_terminal"]:
        why = (
            f"no row finished for {DRAIN_STALL_S:.0f} s: stalled"
            if data["drain_stalled"]
            else f"still draining after {DRAIN_S:.0f} s"
        )
        return f"{f['left_non_terminal_by_status']}; {why}"
    return f"drained in {data['drained_in_s']} s"


def _unfinished(sample: dict[str, Any]) -> int:
    from taskhub.models import ACTIVE_STATUSES

    return sum(v for k, v in sample.items() if k in ACTIVE_STATUSES)


def _backlog_note(samples: list[dict[str, Any]], seconds: float) -> str:
    unfinished = _unfinished
    if not samples:
        return "no samples"
    peak = max(samples, key=unfinished)
    at_end = min(samples, key=lambda x: abs(x["t"] - seconds))
    last = samples[-1]
    return (
        f"at the end of the load {unfinished(at_end):,} (t+{at_end['t']:.0f} s); peak "
        f"{unfinished(peak):,} at t+{peak['t']:.0f} s; last sample {unfinished(last):,} at "
        f"t+{last['t']:.0f} s"
    )


def _report(ctx: Context, drill: Drill, data: dict[str, Any]) -> list[Row]:
    f = data["findings"]
    m = NAME
    by_kind = Counter(e["kind"] for e in drill.log if not e.get("skipped"))
    slowest = f["slowest_recovery_s"]
    never = f["faults_never_recovered"]
    rows = [
        info(
            m,
            "tasks",
            sum(data["kinds"].values()),
            note=f"{drill.shape} shape, {drill.seconds:.0f} s, seed "
            f"{drill.seed}; {', '.join(f'{k} {v}' for k, v in sorted(data['kinds'].items()))}",
        ),
        info(
            m,
            "faults",
            sum(by_kind.values()),
            note=", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())),
        ),
        at_most(m, "tasks lost", f["lost"], 0, note=_examples(f["lost_examples"])),
        at_most(
            m,
            "wrong final status",
            f["wrong_final_status"],
            0,
            note=", ".join(f"{k} {v}" for k, v in f["wrong_final_status_by"].items()),
        ),
        at_most(m, "attempts started twice", f["attempts_started_twice"], 0),
        at_most(
            m,
            "left non-terminal after drain",
            f["left_non_terminal"],
            0,
            note=_drain_note(data, f),
        ),
        Row(
            m,
            "duplicate handler starts",
            f["duplicate_starts"],
            "starts",
            f"≤ {f['attempts_in_flight_at_kills']} in flight at kills",
            f["duplicate_starts"] <= f["attempts_in_flight_at_kills"]
            and not f["stray_duplicate_starts"],
            note=f"{f['stray_duplicate_starts']} not after a kill of their process; of those "
            f"in flight, {f['of_which_ended_within_flush_grace']} had ended < "
            f"{FLUSH_GRACE_S:g} s before it (outcome maybe unwritten)",
        ),
        Row(
            m,
            "slowest recovery",
            slowest,
            "s",
            f"≤ {RECOVERY_LIMIT_S:g}",
            _recovered_in_time(slowest, never, len(f["recoveries"])),
            note=f"{never} faults' in-flight work never ended"
            if never
            else "fault → last task in flight at it ended",
        ),
        info(
            m,
            "longest time no handler ended",
            f["longest_silence_s"],
            "s",
            note=f"from t+{f['longest_silence_from_s']} s: the whole stack made no progress",
        ),
        at_most(
            m,
            "workflow runs not succeeded",
            data["workflows"]["not_succeeded"],
            0,
            note=f"{data['workflows']['statuses']}; fan-in sums wrong "
            f"{data['workflows']['fan_in_sums_wrong']}",
        ),
        at_most(
            m,
            "cron tasks beyond one per slot",
            data["cron"]["beyond_one_per_slot"],
            0,
            note=f"{data['cron']['tasks']} tasks, {data['cron']['slots']} slots",
        ),
        info(
            m,
            "rows unfinished (backlog)",
            max(map(_unfinished, data["backlog"]), default=0),
            note="peak; " + _backlog_note(data["backlog"], drill.seconds),
        ),
        info(
            m,
            "handler busy share",
            data["busy_share"],
            note=f"handler time / thread time offered by {ctx.processes} × {drill.threads} "
            "threads over the load (kills' dead time included)",
        ),
        info(m, "NUL-result tasks by status", str(data["nul_results"])),
        info(m, "cancels", str(data["cancels"])),
    ]
    details = {
        "seed": drill.seed,
        "seconds": drill.seconds,
        "rate_per_s": round(drill.rate, 1),
        "short_timings": SHORT_TIMINGS,
        "stall_s": STALL_S,
        "drain_s": DRAIN_S,
        "shape": f"{ctx.processes} units × {drill.threads} threads",
        "stack": drill.shape,
        "stack_description": SHAPE_NAMES[drill.shape],
        "left_out": sorted(drill.leave_out),
        "fault_log": drill.log,
        **data,
    }
    ctx.details[NAME] = details
    _write_results(ctx, rows, details)
    return rows


def _recovered_in_time(slowest: float | None, never: int, faults: int) -> bool | None:
    """None when no fault was injected (nothing to recover from)."""
    if faults == 0:
        return None
    return never == 0 and slowest is not None and slowest <= RECOVERY_LIMIT_S


def _examples(items: list) -> str:
    return "; ".join(" ".join(map(str, i)) for i in items[:3])


def _write_results(ctx: Context, rows: list[Row], details: dict[str, Any]) -> None:
    from . import report

    stack = details.get("stack", "dispatcher")
    stem = f"{time.strftime('%Y-%m-%d')}-chaos"
    stem += ("-workers" if stack == "workers" else "") + ("-quick" if ctx.quick else "")
    report.RESULTS.mkdir(exist_ok=True)
    data = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "rows": [{**r.__dict__, "verdict": r.verdict} for r in rows],
        "details": details,
    }
    (report.RESULTS / f"{stem}.json").write_text(
        json.dumps(report._clean(data), indent=1, default=str) + "\n"
    )
    f = details["findings"]
    lines = [
        f"# Chaos run {data['date']}, {stack} shape",
        "",
        f"{details.get('stack_description', stack)}; "
        f"seed {details['seed']}, {details['seconds']:.0f} s of load at "
        f"{details['rate_per_s']}/s, {details['shape']}, timings {details['short_timings']}, "
        f"Redis stalls {details['stall_s']} s, drain ≤ {details['drain_s']:.0f} s; the "
        f"workers' first boot took {details['boot_s']} s (before the load). "
        f"Rerun: `python -m bench.run --only chaos --chaos-seed {details['seed']}"
        f"{' --quick' if ctx.quick else ''}"
        f"{' --chaos-shape workers' if stack == 'workers' else ''}"
        f"{' --chaos-leave-out ' + ','.join(details['left_out']) if details['left_out'] else ''}"
        "` (the faults' order and times repeat; what they "
        "hit depends on timing).",
        "",
        report.markdown(rows),
        "",
        "## Examples",
        "",
        f"- lost: {f['lost_examples']}",
        f"- wrong final status: {f['wrong_final_status_examples']}",
        f"- attempts started twice (task, attempt, starts): {f['attempts_started_twice_examples']}",
        f"- stray duplicate starts: {f['stray_examples']}",
        f"- left non-terminal: {f['left_non_terminal_examples']}",
        f"- unplanned handler errors: {f['unplanned_handler_errors']}",
        f"- restarts: {details['restarts']}",
        "",
        "Starts and ends of those tasks (seconds from the start of the load):",
        "",
        *(
            f"- {task}: " + "; ".join(lines) if lines else f"- {task}: never started"
            for task, lines in f["example_timelines"].items()
        ),
        "",
        "## Backlog",
        "",
        "Rows by status every ~30 s (seconds from the start of the load; the load stops at "
        f"t+{details['seconds']:.0f} s):",
        "",
        *(
            f"- t+{x['t']:.0f}: "
            + ", ".join(f"{k} {v}" for k, v in x.items() if k not in ("t", "load"))
            + f" (load average {x.get('load')})"
            for x in details["backlog"][::3]
        ),
        "",
        "## Fault log",
        "",
        *(
            f"- t+{e['t']}s {e['kind']} { {k: v for k, v in e.items() if k not in ('t', 'kind')} }"
            for e in details["fault_log"]
        ),
    ]
    (report.RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
