"""The environment a bench run uses: PostgreSQL and Redis by default, a fresh key prefix, the
bench settings, and the database created and migrated if it is missing."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/taskhub_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SETTINGS = "bench.settings"


def apply_defaults() -> None:
    """Fill in what the environment leaves unset; what it sets is used as it is."""
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    # A fresh prefix per run: runs (and other users of a shared Redis) never see each other.
    os.environ.setdefault("TASKHUB_KEY_PREFIX", f"bench-{uuid.uuid4().hex[:8]}")
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    os.environ.setdefault("LOG_LEVEL", "WARNING")


def ensure_database() -> None:
    """CREATE DATABASE when a PostgreSQL URL names one that doesn't exist yet."""
    import dj_database_url
    import psycopg
    from psycopg import sql

    config = dj_database_url.parse(os.environ["DATABASE_URL"])
    if config["ENGINE"] != "django.db.backends.postgresql":
        return
    params = {
        "host": config.get("HOST") or "127.0.0.1",
        "port": config.get("PORT") or 5432,
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))


def setup_django() -> None:
    import django
    from django.core.management import call_command

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


def child_env(**extra: str) -> dict[str, str]:
    """Environment of every process the bench starts: the same database, Redis and prefix."""
    env = dict(os.environ)
    env.update({"DJANGO_SETTINGS_MODULE": SETTINGS, "PYTHONUNBUFFERED": "1", **extra})
    return env


_LIBRARIES = (
    "dramatiq",
    "redis",
    "hiredis",
    "django",
    "psycopg",
    "psycopg-binary",
    "django-dramatiq",
)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict:
    """What the run ran on, for the results file and the README."""
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_mb"] = int(line.split()[1]) // 1024
                break
    except OSError:
        pass
    # The ratios against bare Dramatiq moved with the libraries and the CPU between runs (the
    # same commit measured 1.07x on one machine and 0.64x on another): record both.
    info["libraries"] = {name: _version(name) for name in _LIBRARIES}
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        pass
    return info
