"""``make drill-hosts`` (root): taskhub on several hosts, simulated with network namespaces.

Three "hosts" are network namespaces on one bridge (10.77.0.0/24), each with its own hostname:

    thd-web  10.77.0.2   web (uvicorn) + dispatcher + scheduler
    thd-w1   10.77.0.3   workers (+ a second scheduler while the scheduler race runs)
    thd-w2   10.77.0.4   workers only

They reach one PostgreSQL and one Redis over those links: the shared PostgreSQL listens on
127.0.0.1 only, so a ``socat`` relay on the bridge address forwards to it (no change to the
server's config); Redis is a private ``redis-server`` bound to the bridge address. With 20,000
tasks the drill measures throughput with one worker host and with two, checks that a queue's
concurrency cap and priorities hold across hosts, and cuts one worker host's link mid-run to
show that nothing is lost, its work comes back within the lifeline bound, and no more tasks run
twice than it had in flight. While the throughput phases run, a second ``runscheduler`` on thd-w1
races the web host's for a per-second cron; part-way the web host's is killed (SIGKILL) and
thd-w1's carries on alone. From the rows: every slot has one ScheduleRun and one task, however
many schedulers raced for it. It prints a table and writes it to ``bench/results/``.

Not part of ``make test``. Without root or network namespaces it says why and exits 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SUBNET, GATEWAY = "10.77.0", "10.77.0.1"
BRIDGE = "thd-br0"
HOSTS = {
    "web": ("thd-web", f"{SUBNET}.2"),
    "w1": ("thd-w1", f"{SUBNET}.3"),
    "w2": ("thd-w2", f"{SUBNET}.4"),
}
DB_NAME = "taskhub_drill_hosts"
PREFIX = f"drill-hosts-{uuid.uuid4().hex[:6]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REDIS_PORT = free_port()
# The orchestrator (root namespace) and every host share these, except the address they use.
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "TASKHUB_KEY_PREFIX": PREFIX,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
        "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "BROKER_URL": "",
    }
)
HOST_ENV = {
    # The web host's dispatcher process dispatches; the worker hosts' workers do not.
    "TASKHUB_EMBEDDED_DISPATCHER": os.environ.get("TASKHUB_EMBEDDED_DISPATCHER", "0"),
    "DATABASE_URL": f"postgres://postgres@{GATEWAY}:5432/{DB_NAME}",
    "REDIS_URL": f"redis://{GATEWAY}:{REDIS_PORT}/0",
    "PYTHONUNBUFFERED": "1",
}


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip() or done.returncode}")
    return done


class Network:
    """The bridge, the namespaces and their veth links; torn down whatever happened."""

    def __init__(self) -> None:
        self.created: list[tuple[str, str]] = []

    def up(self) -> None:
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        self.created.append(("link", BRIDGE))
        sh("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for host, (ns, address) in HOSTS.items():
            sh("ip", "netns", "add", ns)
            self.created.append(("netns", ns))
            outer, inner = f"thd-{host}0", f"thd-{host}1"
            sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            self.created.append(("link", outer))
            sh("ip", "link", "set", inner, "netns", ns)
            sh("ip", "link", "set", outer, "master", BRIDGE, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{address}/24", "dev", inner)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def cut(self, host: str) -> None:
        """Pull the cable: the host keeps running but reaches nothing."""
        sh("ip", "link", "set", f"thd-{host}0", "down")

    def down(self) -> None:
        for kind, name in reversed(self.created):
            if kind == "netns":
                sh("ip", "netns", "del", name, check=False)
            else:
                sh("ip", "link", "del", name, check=False)


class Processes:
    """Long-running processes of the drill, each in its own process group."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def on_host(
        self, host: str, name: str, manage_args: list[str], env: dict | None = None
    ) -> subprocess.Popen:
        ns = HOSTS[host][0]
        # Its own UTS namespace, so the host's workers report their own hostname.
        script = f'hostname {ns} && exec "$@"'
        argv = [
            "ip",
            "netns",
            "exec",
            ns,
            "unshare",
            "--uts",
            "sh",
            "-c",
            script,
            "sh",
            sys.executable,
            str(ROOT / "manage.py"),
            *manage_args,
        ]
        return self.start(f"{host}-{name}", argv, {**HOST_ENV, **(env or {})})

    def stop(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


# ---- the drill -------------------------------------------------------------------------------
def prepare_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DB_NAME}")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def live_workers_on(host: str) -> int:
    from django.utils import timezone

    from taskhub.engine.dispatcher import live_workers

    return sum(1 for w in live_workers(timezone.now()) if w.hostname == HOSTS[host][0])


def finished_count(ids) -> int:
    from taskhub.models import FINISHED_STATUSES, Task

    return Task.objects.filter(id__in=ids, status__in=FINISHED_STATUSES).count()


def run_batch(name: str, payloads: list[dict], *, timeout: float, priority=None) -> tuple:
    from taskhub import schedule_many

    started = time.monotonic()
    rows = schedule_many(name, payloads, priority=priority)
    ids = [r.id for r in rows]
    wait_until(lambda: finished_count(ids) == len(ids), timeout, f"{len(ids)} {name} tasks", 0.5)
    return ids, time.monotonic() - started


def phase_throughput(count: int, seconds: float) -> tuple[float, list]:
    ids, took = run_batch(
        "test.sleep", [{"seconds": seconds, "label": "tp"} for _ in range(count)], timeout=900
    )
    return count / took, ids


def phase_cap(count: int) -> dict:
    from taskhub.conf import taskhub_settings
    from taskhub.engine.broker import get_redis, key

    ids, took = run_batch(
        "test.sleep_capped", [{"seconds": 0.05, "label": "cap"} for _ in range(count)], timeout=600
    )
    peak = int(get_redis().get(key("test", "cap", "peak")) or 0)
    hosts = per_host(ids)
    cap = taskhub_settings.queue_config("capped")["concurrency"]
    return {"count": count, "peak": peak, "cap": cap, "hosts": hosts, "seconds": took}


def phase_priorities(count: int) -> dict:
    import random

    from taskhub import schedule
    from taskhub.console import services
    from taskhub.engine.broker import get_redis, key

    rng = random.Random(7)
    services.pause_queue("single")
    wanted = {}
    for _ in range(count):
        priority = rng.choice([-10, 0, 10, 50])
        row = schedule("test.sleep_single", {"seconds": 0.005, "label": "prio"}, priority=priority)
        wanted[str(row.id)] = priority
    time.sleep(1.0)
    services.resume_queue("single")
    wait_until(lambda: finished_count(list(wanted)) == count, 600, "priority tasks", 0.5)
    order = [v.decode() for v in get_redis().lrange(key("test", "prio", "order"), 0, -1)]
    priorities = [wanted[t] for t in order if t in wanted]
    inversions = sum(1 for a, b in zip(priorities, priorities[1:], strict=False) if a < b)
    return {
        "count": count,
        "started": len(priorities),
        "inversions": inversions,
        "hosts": per_host(list(wanted)),
    }


def per_host(ids) -> dict[str, int]:
    from taskhub.models import Task

    counts: dict[str, int] = {}
    for worker in Task.objects.filter(id__in=ids).values_list("worker_id", flat=True):
        host = (worker or "?").split(":")[0]
        counts[host] = counts.get(host, 0) + 1
    return counts


def phase_cut(net: Network, count: int, seconds: float) -> dict:
    from django.db.models import Max
    from django.utils import timezone

    from taskhub import schedule_many
    from taskhub.conf import taskhub_settings
    from taskhub.engine import claims
    from taskhub.models import IN_FLIGHT_STATUSES, EventKind, Task, TaskEvent

    rows = schedule_many("test.sleep", [{"seconds": seconds, "label": "cut"}] * count)
    ids = [r.id for r in rows]
    started = time.monotonic()
    wait_until(lambda: finished_count(ids) >= count * 0.3, 900, "30% of the cut batch", 0.2)
    # Short tasks leave a host little in flight at any instant: a few longer ones, first in line,
    # and waiting until w2 holds several attempts make sure the cut catches it mid-work.
    long_rows = schedule_many("test.sleep", [{"seconds": 3.0, "label": "cut"}] * 16, priority=50)
    ids += [r.id for r in long_rows]
    count += len(long_rows)

    def w2_claims() -> set[str]:
        flight = list(
            Task.objects.filter(id__in=ids, status__in=IN_FLIGHT_STATUSES).values_list(
                "id", "attempt"
            )
        )
        holders = claims.claim_holders([(str(t), a) for t, a in flight])
        return {
            str(t)
            for (t, _), h in zip(flight, holders, strict=True)
            if h and h.startswith(HOSTS["w2"][0])
        }

    try:
        wait_until(lambda: len(w2_claims()) >= 3, 60, "w2 to hold 3 attempts", 0.05)
    except RuntimeError:
        print("w2 never held 3 attempts at once; cutting anyway", flush=True)
    # What w2 holds at the cut: attempts it claimed (started) that have not finished.
    w2_claimed = w2_claims()
    net.cut("w2")
    cut_at = timezone.now()
    wait_until(lambda: finished_count(ids) == count, 900, "the cut batch to finish", 0.5)
    took = time.monotonic() - started
    done = Task.objects.filter(id__in=ids)
    recovered = TaskEvent.objects.filter(task_id__in=ids, kind=EventKind.RECOVERED, at__gte=cut_at)
    last_recovery = recovered.aggregate(at=Max("at"))["at"]
    bound = (
        taskhub_settings.LIFELINE_TIMEOUT
        + taskhub_settings.LIFELINE_INTERVAL
        + 2 * taskhub_settings.HEARTBEAT_INTERVAL
    )
    return {
        "count": count,
        "completed": done.filter(status="completed").count(),
        "lost": count - done.filter(status="completed").count(),
        "w2_in_flight_at_cut": len(w2_claimed),
        "ran_twice": done.filter(attempt__gt=1).count(),
        "recovered_events": recovered.count(),
        "recovery_seconds": (last_recovery - cut_at).total_seconds() if last_recovery else 0.0,
        "lifeline_bound_seconds": bound,
        "redispatch_after_seconds": taskhub_settings.REDISPATCH_AFTER,
        "seconds": took,
        "hosts": per_host(ids),
    }


RACE_SCHEDULE = "drill-hosts-every-second"
RACE_CRON = "* * * * * *"  # six fields: every second
RACE_TASK = "test.noop"
# Two schedulers polling on the same 1 s period keep a fixed phase to the slots: the one that
# polls first after each second wins every slot and the other never touches one (a first try
# showed w1 30, web 0). Periods just off a second make each one's poll sweep through the second,
# so both win slots and their polls regularly meet. The survivor (w1) polls more often than
# once a second, so after the kill it alone still catches every slot.
RACE_POLL = {"web": 1.1, "w1": 0.9}


def scheduler_env(host: str) -> dict:
    tuned = {
        **json.loads(os.environ.get("TASKHUB_SETTINGS_JSON") or "{}"),
        "SCHEDULER_POLL_INTERVAL": RACE_POLL[host],
    }
    return {"TASKHUB_SETTINGS_JSON": json.dumps(tuned)}


def scheduler_fires(path: Path, start: int, end: int | None = None) -> int:
    """Slots a scheduler logged as fired ("scheduler fired N slots, …") in a byte range of its
    log (every record is written and flushed as it happens: PYTHONUNBUFFERED, a StreamHandler)."""
    import re

    with open(path, "rb") as f:
        f.seek(start)
        text = f.read(None if end is None else max(0, end - start)).decode(errors="replace")
    return sum(int(n) for n in re.findall(r"scheduler fired (\d+) slots", text))


class SchedulerRace:
    """``runscheduler`` on the web host and on thd-w1 at once, both firing one per-second cron
    stored in the database, while the drill's other phases run. After ``race`` seconds the web
    host's scheduler is killed (SIGKILL, whatever it is doing); thd-w1's fires alone for ``solo``
    seconds; then the schedule is disabled. ``finish`` checks the rows: one ScheduleRun and one
    task per slot, and every run's task is its own."""

    def __init__(self, procs: Processes, race: float, solo: float) -> None:
        self.procs, self.race, self.solo = procs, race, solo
        self.result: dict = {
            "schedule": RACE_SCHEDULE,
            "cron": RACE_CRON,
            "task": RACE_TASK,
            "race_seconds": race,
            "solo_seconds": solo,
        }
        self.error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def log(self, host: str) -> Path:
        return self.procs.log_dir / f"{host}-scheduler.log"

    def start(self) -> None:
        from taskhub.models import TaskSchedule
        from taskhub.scheduler.schedules import create_schedule, disable_schedule

        self.result["poll_seconds"] = RACE_POLL
        self.procs.on_host("w1", "scheduler", ["runscheduler"], scheduler_env("w1"))
        for host in ("web", "w1"):
            wait_until(
                lambda h=host: b"scheduler started" in self.log(h).read_bytes(),
                60,
                f"the scheduler on {host}",
            )
        # The crons declared in code (hourly / 5-minute maintenance) are off for the drill, so a
        # scheduler's "fired N slots" log lines count this schedule's slots and nothing else.
        others = TaskSchedule.objects.exclude(name=RACE_SCHEDULE).filter(enabled=True)
        self.result["other_schedules_disabled"] = sorted(others.values_list("name", flat=True))
        for name in self.result["other_schedules_disabled"]:
            disable_schedule(name)
        self.offsets = {h: self.log(h).stat().st_size for h in ("web", "w1")}
        row = create_schedule(RACE_SCHEDULE, RACE_TASK, cron=RACE_CRON)
        self.result["first_due"] = row.next_run_at.isoformat()
        self.started = time.time()
        self._thread = threading.Thread(target=self._run, name="scheduler-race", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from django.db import connections

        from taskhub.console.health import scheduler_check
        from taskhub.scheduler.schedules import disable_schedule

        try:
            if self._stop.wait(self.race):
                return
            web, w1 = self.procs.procs.get("web-scheduler"), self.procs.procs.get("w1-scheduler")
            self.result["alive_at_kill"] = {
                "web": web is not None and web.poll() is None,
                "w1": w1 is not None and w1.poll() is None,
            }
            self.procs.stop("web-scheduler", signal.SIGKILL)
            self.killed_at = time.time()
            self.offsets["w1-kill"] = self.log("w1").stat().st_size
            if self._stop.wait(self.solo):
                return
            self.result["w1_alive_at_end"] = w1 is not None and w1.poll() is None
            self.result["health_at_end"] = scheduler_check()
            disable_schedule(RACE_SCHEDULE)
            self.ended = time.time()
        except Exception as exc:  # reported by finish(), in the main thread
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            connections.close_all()

    def finish(self) -> dict:
        """Wait for the race to end and its tasks to finish; then read the rows."""
        import datetime as dt

        from taskhub.models import FINISHED_STATUSES, ScheduleRun, Task
        from taskhub.scheduler.runs import refresh_run_outcomes

        if self._thread is not None:
            self._thread.join(self.race + self.solo + 120)
        if self.error or not hasattr(self, "ended"):
            raise RuntimeError(f"the scheduler race did not complete: {self.error or 'timeout'}")
        r = self.result
        runs = ScheduleRun.objects.filter(schedule__name=RACE_SCHEDULE)
        tasks = Task.objects.filter(name=RACE_TASK, correlation_id=f"schedule:{RACE_SCHEDULE}")
        wait_until(
            lambda: not tasks.exclude(status__in=FINISHED_STATUSES).exists(),
            120,
            "the scheduled tasks to finish",
            0.5,
        )
        refresh_run_outcomes(runs)  # runs mirror their task's status; bring them up to date
        rows = list(runs.values_list("slot", "task_id", "status", "created_at"))
        slots = sorted({slot for slot, *_ in rows})
        task_ids = set(tasks.values_list("id", flat=True))
        run_task_ids = [t for _, t, _, _ in rows if t is not None]
        killed = dt.datetime.fromtimestamp(self.killed_at, dt.UTC)
        span = int((slots[-1] - slots[0]).total_seconds()) + 1 if slots else 0
        web_fired = scheduler_fires(self.log("web"), self.offsets["web"])
        w1_before = scheduler_fires(self.log("w1"), self.offsets["w1"], self.offsets["w1-kill"])
        w1_after = scheduler_fires(self.log("w1"), self.offsets["w1-kill"])
        r.update(
            {
                "runs": len(rows),
                "slots": len(slots),
                "first_slot": slots[0].isoformat() if slots else None,
                "last_slot": slots[-1].isoformat() if slots else None,
                "tasks": len(task_ids),
                # a slot's second task, or a run pointing at a task another run also has
                "tasks_beyond_one_per_slot": len(task_ids) - len(slots),
                "runs_sharing_a_task": len(run_task_ids) - len(set(run_task_ids)),
                "runs_without_their_task": len([t for t in run_task_ids if t not in task_ids])
                + len(rows)
                - len(run_task_ids),
                "tasks_completed": tasks.filter(status="completed").count(),
                "run_statuses": sorted({s for _, _, s, _ in rows}),
                "slots_missed": span - len(slots),
                "slots_after_kill": sum(1 for _, _, _, at in rows if at > killed),
                "fired_logged": {"web": web_fired, "w1_racing": w1_before, "w1_alone": w1_after},
                "race_wall_seconds": round(self.ended - self.started, 1),
            }
        )
        return r

    def abort(self) -> None:
        self._stop.set()


def has_scheduler() -> bool:
    from django.core.management import get_commands

    return "runscheduler" in get_commands()


def drill(args) -> dict:
    log_dir = ROOT / "var" / "drill-hosts"
    log_dir.mkdir(parents=True, exist_ok=True)
    net, procs = Network(), Processes(log_dir)
    race: SchedulerRace | None = None
    try:
        net.up()
    except RuntimeError as exc:
        net.down()
        return {"skipped": f"network namespaces are not available here: {exc}"}
    try:
        procs.start(
            "redis",
            [
                "redis-server",
                "--port",
                str(REDIS_PORT),
                "--bind",
                "127.0.0.1",
                GATEWAY,
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ],
        )
        procs.start(
            "pg-relay",
            ["socat", f"TCP-LISTEN:5432,bind={GATEWAY},fork,reuseaddr", "TCP:127.0.0.1:5432"],
        )
        prepare_database()
        from taskhub.engine.broker import get_redis

        wait_until(lambda: get_redis().ping(), 10, "the drill's Redis")
        workers = [
            "rundramatiq",
            "--processes",
            str(args.processes),
            "--threads",
            str(args.threads),
            "--worker-shutdown-timeout",
            "5000",
        ]
        procs.on_host("web", "dispatcher", ["taskhub", "dispatcher"])
        procs.start(
            "web-http",
            [
                "ip",
                "netns",
                "exec",
                HOSTS["web"][0],
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                HOSTS["web"][1],
                "--port",
                "8000",
                "--no-access-log",
            ],
            HOST_ENV,
        )
        scheduler = has_scheduler()
        if scheduler:
            procs.on_host("web", "scheduler", ["runscheduler"], scheduler_env("web"))
        procs.on_host("w1", "worker", workers)
        wait_until(lambda: live_workers_on("w1") >= args.processes, 60, "w1's workers")
        web_ok = wait_until(web_healthy, 30, "the web host's /healthz")
        n = args.tasks
        cut_count = n - 2 * args.throughput_tasks - args.cap_tasks - args.priority_tasks
        result: dict = {"tasks": n, "scheduler": scheduler, "web_healthz": web_ok}
        if scheduler:
            print(
                f"schedulers on web and w1 race for '{RACE_CRON}' for {args.scheduler_race:g}s,"
                f" then web's is killed and w1's fires alone for {args.scheduler_solo:g}s "
                "(during phases 1-2)",
                flush=True,
            )
            race = SchedulerRace(procs, args.scheduler_race, args.scheduler_solo)
            race.start()
        print("phase 1: throughput, one worker host", flush=True)
        result["one_host_rate"], _ = phase_throughput(args.throughput_tasks, args.sleep)
        procs.on_host("w2", "worker", workers)
        wait_until(lambda: live_workers_on("w2") >= args.processes, 60, "w2's workers")
        print("phase 2: throughput, two worker hosts", flush=True)
        result["two_host_rate"], two_ids = phase_throughput(args.throughput_tasks, args.sleep)
        result["two_host_split"] = per_host(two_ids)
        if race is not None:
            result["scheduler_race"] = race.finish()
        print("phase 3: a capped queue across hosts", flush=True)
        result["cap"] = phase_cap(args.cap_tasks)
        print("phase 4: priorities across hosts", flush=True)
        result["priorities"] = phase_priorities(args.priority_tasks)
        print(f"phase 5: {cut_count} tasks, w2's link cut at 30%", flush=True)
        result["cut"] = phase_cut(net, cut_count, args.sleep)
        result["tasks"] = n - cut_count + result["cut"]["count"]
        return result
    finally:
        if race is not None:
            race.abort()
        procs.stop_all()
        net.down()
        if not args.keep_database:
            from django.db import connections

            connections.close_all()
            import psycopg

            url = "postgresql://postgres@127.0.0.1:5432/postgres"
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def web_healthy() -> bool:
    import httpx

    try:
        return httpx.get(f"http://{HOSTS['web'][1]}:8000/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def table(r: dict, args) -> str:
    cap, prio, cut = r["cap"], r["priorities"], r["cut"]
    rows = [
        ("tasks in the drill", f"{r['tasks']:,}", ""),
        (
            "throughput, 1 worker host",
            f"{r['one_host_rate']:.0f} tasks/s",
            f"{args.throughput_tasks:,} × sleep {args.sleep}s, "
            f"{args.processes}×{args.threads} threads per host",
        ),
        (
            "throughput, 2 worker hosts",
            f"{r['two_host_rate']:.0f} tasks/s",
            f"×{r['two_host_rate'] / r['one_host_rate']:.2f}; "
            f"split {fmt_hosts(r['two_host_split'])}",
        ),
        (
            "cap of 'capped' across hosts",
            f"peak {cap['peak']} ≤ {cap['cap']}",
            f"{'holds' if cap['peak'] <= cap['cap'] else 'BROKEN'}; "
            f"split {fmt_hosts(cap['hosts'])}",
        ),
        (
            "priorities across hosts",
            f"{prio['inversions']} inversions",
            f"{prio['started']} starts in 'single'; split {fmt_hosts(prio['hosts'])}",
        ),
        (
            "link cut: tasks lost",
            f"{cut['lost']}",
            f"{cut['completed']:,} of {cut['count']:,} completed",
        ),
        (
            "link cut: recovered within",
            f"{cut['recovery_seconds']:.1f} s",
            f"lifeline bound {cut['lifeline_bound_seconds']:.0f} s, "
            f"re-send after {cut['redispatch_after_seconds']:.0f} s",
        ),
        (
            "link cut: ran twice",
            f"{cut['ran_twice']}",
            f"≤ w2's in-flight at the cut: {cut['w2_in_flight_at_cut']}",
        ),
        ("web host /healthz over its link", "200" if r["web_healthz"] else "down", ""),
    ]
    rows += (
        scheduler_rows(r.get("scheduler_race"))
        if r["scheduler"]
        else [("schedulers on two hosts", "not in this build", "")]
    )
    lines = ["| measure | result | detail |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def scheduler_rows(race: dict) -> list[tuple[str, str, str]]:
    fired, alive = race["fired_logged"], race["alive_at_kill"]
    health = race["health_at_end"]
    return [
        (
            "schedulers web + w1: slots fired",
            f"{race['slots']}",
            f"cron '{race['cron']}', polls every {race['poll_seconds']['web']:g} s / "
            f"{race['poll_seconds']['w1']:g} s, {race['race_seconds']:g} s racing then "
            f"{race['solo_seconds']:g} s w1 alone; {race['runs']} runs, {race['tasks']} tasks "
            f"({race['tasks_completed']} completed)",
        ),
        (
            "schedulers: a slot fired twice",
            f"{race['tasks_beyond_one_per_slot']}",
            f"tasks − slots; runs sharing a task {race['runs_sharing_a_task']}, "
            f"runs without their task {race['runs_without_their_task']}",
        ),
        (
            "schedulers: both firing while racing",
            f"web {fired['web']}, w1 {fired['w1_racing']} slots",
            f"from each one's log (+ w1 alone {fired['w1_alone']} = "
            f"{fired['web'] + fired['w1_racing'] + fired['w1_alone']} of {race['runs']} runs); "
            f"both alive at the kill: "
            f"{'yes' if alive['web'] and alive['w1'] else 'NO ' + str(alive)}",
        ),
        (
            "web scheduler killed (SIGKILL)",
            f"{race['slots_after_kill']} slots after",
            f"each once, from w1 alone (alive to the end: "
            f"{'yes' if race['w1_alive_at_end'] else 'NO'}); slots missed in the whole run "
            f"{race['slots_missed']}; health {health['status']}"
            + (
                f" (last poll {health['last_poll_seconds_ago']} s ago)"
                if health.get("last_poll_seconds_ago") is not None
                else ""
            ),
        ),
    ]


def fmt_hosts(counts: dict) -> str:
    return ", ".join(f"{h.replace('thd-', '')} {n}" for h, n in sorted(counts.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--throughput-tasks", type=int, default=4_000)
    parser.add_argument("--cap-tasks", type=int, default=600)
    parser.add_argument("--priority-tasks", type=int, default=200)
    parser.add_argument("--sleep", type=float, default=0.05, help="seconds each task sleeps")
    parser.add_argument("--processes", type=int, default=1, help="worker processes per host")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process")
    parser.add_argument(
        "--scheduler-race",
        type=float,
        default=20.0,
        help="seconds the schedulers on web and w1 race for the per-second cron",
    )
    parser.add_argument(
        "--scheduler-solo",
        type=float,
        default=10.0,
        help="seconds w1's scheduler fires alone after web's is killed",
    )
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("drill-hosts SKIPPED: needs root (network namespaces, veth links)")
        return 0
    tools = ("ip", "unshare", "socat", "redis-server")
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        print(f"drill-hosts SKIPPED: missing tools: {', '.join(missing)}")
        return 0
    result = drill(args)
    if "skipped" in result:
        print(f"drill-hosts SKIPPED: {result['skipped']}")
        return 0
    text = table(result, args)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.date.today().isoformat()
    header = (
        f"# drill-hosts {stamp}\n\n3 network namespaces on one bridge (web + dispatcher + "
        "scheduler, two worker hosts; a second scheduler on w1 during phases 1-2), 2 shared "
        "cores, PostgreSQL via a relay, private Redis.\n\n"
    )
    (RESULTS / f"{stamp}-drill-hosts.md").write_text(header + text + "\n")
    (RESULTS / f"{stamp}-drill-hosts.json").write_text(json.dumps(result, indent=2) + "\n")
    cut, cap, race = result["cut"], result["cap"], result.get("scheduler_race")
    ok = (
        cut["lost"] == 0
        and cap["peak"] <= cap["cap"]
        and result["priorities"]["inversions"] == 0
        and cut["ran_twice"] <= cut["w2_in_flight_at_cut"]
    )
    if race is not None:
        fired = race["fired_logged"]
        ok = ok and (
            race["tasks_beyond_one_per_slot"] == 0
            and race["runs_sharing_a_task"] == 0
            and race["runs_without_their_task"] == 0
            and all(race["alive_at_kill"].values())
            and race["w1_alive_at_end"]
            and fired["web"] > 0
            and fired["w1_racing"] > 0
            and race["slots_after_kill"] > 0
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
