"""``taskhub up``: the whole stack in one command — migrations, ASGI web server, workers (which
dispatch too, unless EMBEDDED_DISPATCHER is off: then a dispatcher process), the scheduler once
registered — until Ctrl-C or SIGTERM, then a clean shutdown.

It supervises its children as a process manager does: a child that exits on its own (a kill -9,
the OOM killer, a crash) is started again after a backoff, logged, while the others keep running.
Only Ctrl-C / SIGTERM stops the stack — or a child that never manages to start (a port in use, a
broken setting), which restarting cannot cure.

Each Dramatiq worker process runs under its own ``rundramatiq --processes 1`` child: Dramatiq's
main process shuts all its workers down when one of them dies, so one main per worker process
keeps a kill -9 to the attempts that process held (the lifeline re-runs them).

Each child runs in its own process group, so stopping the group also stops whatever the child
forked (Dramatiq's worker processes): no orphans.

The web process serves the project's ``ASGI_APPLICATION``; the others run the project's
``manage.py`` (found by :func:`project_entry`), or ``python -m django`` with the same settings
module where there is none.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import connection

from ..conf import taskhub_settings
from ..console.roles import create_first_admin
from ..engine import embedded
from ..engine.broker import ensure_redis, redis_url, uses_embedded_redis
from .subcommands import fail

logger = logging.getLogger(__name__)

#: Extra long-running processes other parts of the project add (name → argv after manage.py).
EXTRA_PROCESSES: dict[str, list[str]] = {}
SHUTDOWN_GRACE = 30.0
#: A child that exits sooner than this after its start has failed to start.
STARTUP_SECONDS = 10.0
#: Failed starts in a row, of a child that never started, before the stack gives up.
MAX_FAILED_STARTS = 5
#: Restart delay: RESTART_BACKOFF seconds, doubled for each failed start in a row, at most
#: RESTART_BACKOFF_MAX.
RESTART_BACKOFF = 1.0
RESTART_BACKOFF_MAX = 30.0
POLL_INTERVAL = 0.2


@dataclass
class Child:
    """One supervised process: its command line and its restart history."""

    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    #: When a restart is due (monotonic); None while the process runs.
    restart_at: float | None = None
    restarts: int = 0
    #: Exits within STARTUP_SECONDS in a row; reset by a run that lasted longer.
    failed_starts: int = 0
    #: Whether it ever ran longer than STARTUP_SECONDS.
    started_once: bool = False

    def restart_delay(self) -> float:
        return min(RESTART_BACKOFF_MAX, RESTART_BACKOFF * 2**self.failed_starts)


@dataclass
class Stack:
    host: str = "127.0.0.1"
    port: int = 8000
    processes: int = 2
    threads: int = 8
    children: dict[str, Child] = field(default_factory=dict)
    _stopping: bool = False

    def commands(self) -> dict[str, list[str]]:
        manage, _ = project_entry()
        grace_ms = str(int(SHUTDOWN_GRACE * 1000))
        worker = [*manage, "rundramatiq", "--processes", "1", "--threads", str(self.threads)]
        worker += ["--worker-shutdown-timeout", grace_ms]
        return {
            "web": [
                sys.executable,
                "-m",
                "uvicorn",
                asgi_target(),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--no-access-log",
                # open event streams must not hold a shutdown up (uvicorn waits forever)
                "--lifespan",
                "off",
                "--timeout-graceful-shutdown",
                "8",
            ],
            **{f"worker-{n}": worker for n in range(1, self.processes + 1)},
            # With EMBEDDED_DISPATCHER on, the workers lead dispatching (taskhub.engine.leadership):
            # the stack is what a host deploying `rundramatiq` alone runs.
            **(
                {}
                if taskhub_settings.EMBEDDED_DISPATCHER
                else {"dispatcher": [*manage, "taskhub", "dispatcher"]}
            ),
            **{name: [*manage, *argv] for name, argv in EXTRA_PROCESSES.items()},
        }

    def run(self) -> int:
        asgi_target()  # a missing ASGI_APPLICATION is reported before anything starts
        started_redis = False
        if uses_embedded_redis():
            redis_url()  # the clear error when no Redis is configured and none is installed
            started_redis = embedded.ensure_running()
        else:
            ensure_redis()
        call_command("migrate", interactive=False, verbosity=0)
        if connection.vendor == "sqlite":
            # The try-it-now shape (no database server): nobody has had the chance to create a
            # user yet.
            _announce_first_admin()
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            for name, argv in self.commands().items():
                self.children[name] = Child(name, argv)
                self._start(self.children[name])
            sys.stdout.write(
                f"taskhub is up: http://{self.host}:{self.port}/admin/ (Ctrl-C to stop)\n"
            )
            sys.stdout.flush()
            return self._watch()
        finally:
            self._shutdown()
            if started_redis:
                embedded.stop()

    def _on_signal(self, signum, frame) -> None:
        self._stopping = True

    def _start(self, child: Child) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        child.process = subprocess.Popen(
            child.argv, cwd=project_entry()[1], env=env, start_new_session=True
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        logger.info("started %s (pid %d)", child.name, child.process.pid)

    def _watch(self) -> int:
        """Supervise until a signal asks to stop (0) or a child cannot start at all (1)."""
        while not self._stopping:
            now = time.monotonic()
            for child in self.children.values():
                if not self._tend(child, now):
                    return 1
            time.sleep(POLL_INTERVAL)
        return 0

    def _tend(self, child: Child, now: float) -> bool:
        """Start a child whose restart is due, or plan one for a child that exited."""
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.restarts += 1
                self._start(child)
            return True
        if child.process.poll() is None or self._stopping:
            return True
        return self._schedule_restart(child, now)

    def _schedule_restart(self, child: Child, now: float) -> bool:
        """Plan the restart of a child that exited on its own; False when it is hopeless."""
        # Whatever the child forked and left behind (its group) goes with it.
        _signal_group(child.process, signal.SIGKILL)
        code, ran_for = child.process.returncode, now - child.started_at
        if ran_for >= STARTUP_SECONDS:
            child.started_once, child.failed_starts = True, 0
        else:
            child.failed_starts += 1
        if not child.started_once and child.failed_starts >= MAX_FAILED_STARTS:
            logger.error(
                "%s exited with code %s %d times in a row within %.0fs of its start; "
                "stopping the stack",
                *(child.name, code, child.failed_starts, STARTUP_SECONDS),
            )
            return False
        delay = child.restart_delay()
        child.restart_at = now + delay
        logger.error(
            "%s (pid %d) exited unexpectedly with code %s after %.1fs; restarting it in %.0fs "
            "(restart %d)",
            *(child.name, child.process.pid, code, ran_for, delay, child.restarts + 1),
        )
        return True

    def _running(self) -> list[subprocess.Popen]:
        return [c.process for c in self.children.values() if c.process is not None]

    def _shutdown(self) -> None:
        # SIGTERM to each child only, not its group: Dramatiq's main process forwards it to its
        # workers, and a worker that receives a second SIGTERM exits at once (no grace).
        for process in self._running():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_GRACE + 5
        for process in self._running():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        # The group may hold grandchildren that outlived their parent.
        for process in self._running():
            _signal_group(process, signal.SIGKILL)


def asgi_target() -> str:
    """The project's ASGI_APPLICATION ("mysite.asgi.application") as uvicorn names it
    ("mysite.asgi:application")."""
    path = getattr(settings, "ASGI_APPLICATION", None) or ""
    module, _, attribute = path.rpartition(".")
    if not module or not attribute:
        raise fail(
            "taskhub up serves the project's ASGI application, and settings.ASGI_APPLICATION "
            f"is {path!r}: set it to the dotted path of the application object, e.g. "
            "ASGI_APPLICATION = 'mysite.asgi.application' (startproject writes mysite/asgi.py)"
        )
    return f"{module}:{attribute}"


def project_entry() -> tuple[list[str], Path]:
    """The command line that runs a management command of this project, and the folder to run
    it in (the project's root, so its packages import).

    The project's manage.py: the script running now (``python manage.py taskhub up``), else the
    one in BASE_DIR, else in the working directory. With none (``django-admin taskhub up``),
    ``python -m django`` in the working directory: children inherit DJANGO_SETTINGS_MODULE.
    """
    candidates = [Path(sys.argv[0])] if Path(sys.argv[0]).name == "manage.py" else []
    base = getattr(settings, "BASE_DIR", None)
    if base is not None:
        candidates.append(Path(base) / "manage.py")
    candidates.append(Path.cwd() / "manage.py")
    for manage in candidates:
        if manage.is_file():
            manage = manage.resolve()
            return [sys.executable, str(manage)], manage.parent
    return [sys.executable, "-m", "django"], Path.cwd()


def _announce_first_admin() -> None:
    """The embedded default starts with an admin user, whose credentials are printed once."""
    created = create_first_admin()
    if created:
        name, password, token = created
        sys.stdout.write(
            f"created the first admin user (shown only this once):\n"
            f"  user: {name}\n  password: {password}\n  API token: {token}\n"
        )


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
