"""``make drill-hosts`` (root): taskhub on several hosts, simulated with network namespaces.

Three "hosts" are network namespaces on one bridge (10.77.0.0/24), each with its own hostname:

    thd-web  10.77.0.2   web (uvicorn) + dispatcher (+ scheduler when the project has one)
    thd-w1   10.77.0.3   workers only
    thd-w2   10.77.0.4   workers only

They reach one PostgreSQL and one Redis over those links: the shared PostgreSQL listens on
127.0.0.1 only, so a ``socat`` relay on the bridge address forwards to it (no change to the
server's config); Redis is a private ``redis-server`` bound to the bridge address. With 20,000
tasks the drill measures throughput with one worker host and with two, checks that a queue's
concurrency cap and priorities hold across hosts, and cuts one worker host's link mid-run to
show that nothing is lost, its work comes back within the lifeline bound, and no more tasks run
twice than it had in flight. It prints a table and writes it to ``bench/results/``.

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
os.environ.update({
    "DJANGO_SETTINGS_MODULE": "config.settings_test",
    "TASKHUB_KEY_PREFIX": PREFIX,
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
    "BROKER_URL": "",
})  # fmt: skip
HOST_ENV = {
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
            argv, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.procs[name] = proc
        return proc

    def on_host(self, host: str, name: str, manage_args: list[str]) -> subprocess.Popen:
        ns = HOSTS[host][0]
        # Its own UTS namespace, so the host's workers report their own hostname.
        script = f'hostname {ns} && exec "$@"'
        argv = ["ip", "netns", "exec", ns, "unshare", "--uts", "sh", "-c", script, "sh",
                sys.executable, str(ROOT / "manage.py"), *manage_args]  # fmt: skip
        return self.start(f"{host}-{name}", argv, HOST_ENV)

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

    from taskhub.dispatcher import live_workers

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
    from taskhub.broker import get_redis, key
    from taskhub.conf import taskhub_settings

    ids, took = run_batch(
        "test.sleep_capped", [{"seconds": 0.05, "label": "cap"} for _ in range(count)], timeout=600
    )
    peak = int(get_redis().get(key("test", "cap", "peak")) or 0)
    hosts = per_host(ids)
    cap = taskhub_settings.queue_config("capped")["concurrency"]
    return {"count": count, "peak": peak, "cap": cap, "hosts": hosts, "seconds": took}


def phase_priorities(count: int) -> dict:
    import random

    from taskhub import schedule, services
    from taskhub.broker import get_redis, key

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
    return {"count": count, "started": len(priorities), "inversions": inversions,
            "hosts": per_host(list(wanted))}  # fmt: skip


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

    from taskhub import claims, schedule_many
    from taskhub.conf import taskhub_settings
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
        return {str(t) for (t, _), h in zip(flight, holders, strict=True)
                if h and h.startswith(HOSTS["w2"][0])}  # fmt: skip

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


def has_scheduler() -> bool:
    from django.core.management import get_commands

    return "runscheduler" in get_commands()


def drill(args) -> dict:
    log_dir = ROOT / "var" / "drill-hosts"
    log_dir.mkdir(parents=True, exist_ok=True)
    net, procs = Network(), Processes(log_dir)
    try:
        net.up()
    except RuntimeError as exc:
        net.down()
        return {"skipped": f"network namespaces are not available here: {exc}"}
    try:
        procs.start("redis", ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
                              GATEWAY, "--save", "", "--appendonly", "no", "--protected-mode",
                              "no"])  # fmt: skip
        procs.start("pg-relay", ["socat", f"TCP-LISTEN:5432,bind={GATEWAY},fork,reuseaddr",
                                 "TCP:127.0.0.1:5432"])  # fmt: skip
        prepare_database()
        from taskhub.broker import get_redis

        wait_until(lambda: get_redis().ping(), 10, "the drill's Redis")
        workers = ["rundramatiq", "--processes", str(args.processes), "--threads",
                   str(args.threads), "--worker-shutdown-timeout", "5000"]  # fmt: skip
        procs.on_host("web", "dispatcher", ["taskhub", "dispatcher"])
        procs.start("web-http", ["ip", "netns", "exec", HOSTS["web"][0], sys.executable, "-m",
                                 "uvicorn", "config.asgi:application", "--host", HOSTS["web"][1],
                                 "--port", "8000", "--no-access-log"], HOST_ENV)  # fmt: skip
        scheduler = has_scheduler()
        if scheduler:
            procs.on_host("web", "scheduler", ["runscheduler"])
        procs.on_host("w1", "worker", workers)
        wait_until(lambda: live_workers_on("w1") >= args.processes, 60, "w1's workers")
        web_ok = wait_until(web_healthy, 30, "the web host's /healthz")
        n = args.tasks
        cut_count = n - 2 * args.throughput_tasks - args.cap_tasks - args.priority_tasks
        result: dict = {"tasks": n, "scheduler": scheduler, "web_healthz": web_ok}
        print("phase 1: throughput, one worker host", flush=True)
        result["one_host_rate"], _ = phase_throughput(args.throughput_tasks, args.sleep)
        procs.on_host("w2", "worker", workers)
        wait_until(lambda: live_workers_on("w2") >= args.processes, 60, "w2's workers")
        print("phase 2: throughput, two worker hosts", flush=True)
        result["two_host_rate"], two_ids = phase_throughput(args.throughput_tasks, args.sleep)
        result["two_host_split"] = per_host(two_ids)
        print("phase 3: a capped queue across hosts", flush=True)
        result["cap"] = phase_cap(args.cap_tasks)
        print("phase 4: priorities across hosts", flush=True)
        result["priorities"] = phase_priorities(args.priority_tasks)
        print(f"phase 5: {cut_count} tasks, w2's link cut at 30%", flush=True)
        result["cut"] = phase_cut(net, cut_count, args.sleep)
        result["tasks"] = n - cut_count + result["cut"]["count"]
        return result
    finally:
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
        ("throughput, 1 worker host", f"{r['one_host_rate']:.0f} tasks/s",
         f"{args.throughput_tasks:,} × sleep {args.sleep}s, "
         f"{args.processes}×{args.threads} threads per host"),
        ("throughput, 2 worker hosts", f"{r['two_host_rate']:.0f} tasks/s",
         f"×{r['two_host_rate'] / r['one_host_rate']:.2f}; split {fmt_hosts(r['two_host_split'])}"),
        ("cap of 'capped' across hosts", f"peak {cap['peak']} ≤ {cap['cap']}",
         f"{'holds' if cap['peak'] <= cap['cap'] else 'BROKEN'}; split {fmt_hosts(cap['hosts'])}"),
        ("priorities across hosts", f"{prio['inversions']} inversions",
         f"{prio['started']} starts in 'single'; split {fmt_hosts(prio['hosts'])}"),
        ("link cut: tasks lost", f"{cut['lost']}",
         f"{cut['completed']:,} of {cut['count']:,} completed"),
        ("link cut: recovered within", f"{cut['recovery_seconds']:.1f} s",
         f"lifeline bound {cut['lifeline_bound_seconds']:.0f} s, "
         f"re-send after {cut['redispatch_after_seconds']:.0f} s"),
        ("link cut: ran twice", f"{cut['ran_twice']}",
         f"≤ w2's in-flight at the cut: {cut['w2_in_flight_at_cut']}"),
        ("web host /healthz over its link", "200" if r["web_healthz"] else "down", ""),
        ("scheduler on the web host", "ran" if r["scheduler"] else "not in this build", ""),
    ]  # fmt: skip
    lines = ["| measure | result | detail |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


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
        f"# drill-hosts {stamp}\n\n3 network namespaces on one bridge (web + dispatcher, two "
        "worker hosts), 2 shared cores, PostgreSQL via a relay, private Redis.\n\n"
    )
    (RESULTS / f"{stamp}-drill-hosts.md").write_text(header + text + "\n")
    (RESULTS / f"{stamp}-drill-hosts.json").write_text(json.dumps(result, indent=2) + "\n")
    cut, cap = result["cut"], result["cap"]
    ok = (cut["lost"] == 0 and cap["peak"] <= cap["cap"] and result["priorities"]["inversions"] == 0
          and cut["ran_twice"] <= cut["w2_in_flight_at_cut"])  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
