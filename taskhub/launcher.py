"""``taskhub up``: the whole stack in one command — migrations, ASGI web server, workers,
dispatcher (and scheduler once registered) — until Ctrl-C or SIGTERM, then a clean shutdown.

Each child runs in its own process group, so stopping the group also stops whatever the child
forked (Dramatiq's worker processes): no orphans.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management import call_command

from . import embedded
from .broker import ensure_redis, uses_embedded_redis

logger = logging.getLogger(__name__)

#: Extra long-running processes other parts of the project add (name → argv after manage.py).
EXTRA_PROCESSES: dict[str, list[str]] = {}
SHUTDOWN_GRACE = 30.0


@dataclass
class Stack:
    host: str = "127.0.0.1"
    port: int = 8000
    processes: int = 2
    threads: int = 8
    children: dict[str, subprocess.Popen] = field(default_factory=dict)
    _stopping: bool = False

    def commands(self) -> dict[str, list[str]]:
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        return {
            "web": [sys.executable, "-m", "uvicorn", "config.asgi:application",
                    "--host", self.host, "--port", str(self.port), "--no-access-log",
                    # open event streams must not hold a shutdown up (uvicorn waits forever)
                    "--lifespan", "off", "--timeout-graceful-shutdown", "8"],
            "worker": [*manage, "rundramatiq", "--processes", str(self.processes),
                       "--threads", str(self.threads), "--worker-shutdown-timeout",
                       str(int(SHUTDOWN_GRACE * 1000))],
            "dispatcher": [*manage, "taskhub", "dispatcher"],
            **{name: [*manage, *argv] for name, argv in EXTRA_PROCESSES.items()},
        }  # fmt: skip

    def run(self) -> int:
        started_redis = False
        if uses_embedded_redis():
            started_redis = embedded.ensure_running()
        else:
            ensure_redis()
        call_command("migrate", interactive=False, verbosity=0)
        if not settings.DATABASE_URL:
            _announce_first_admin()
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            for name, argv in self.commands().items():
                self.children[name] = subprocess.Popen(
                    argv, cwd=settings.BASE_DIR, env=env, start_new_session=True
                )
                logger.info("started %s (pid %d)", name, self.children[name].pid)
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

    def _watch(self) -> int:
        while not self._stopping:
            for name, child in self.children.items():
                if child.poll() is not None:
                    logger.error(
                        "%s exited with code %s; stopping the stack", name, child.returncode
                    )
                    return 1
            time.sleep(0.5)
        return 0

    def _shutdown(self) -> None:
        # SIGTERM to each child only, not its group: Dramatiq's main process forwards it to its
        # workers, and a worker that receives a second SIGTERM exits at once (no grace).
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_GRACE + 5
        for child in self.children.values():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
                child.wait()
        # The group may hold grandchildren that outlived their parent.
        for child in self.children.values():
            _signal_group(child, signal.SIGKILL)


def _announce_first_admin() -> None:
    """The embedded default starts with an admin user, whose credentials are printed once."""
    from .roles import create_first_admin

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
