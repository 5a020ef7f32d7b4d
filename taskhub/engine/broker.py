"""The broker (transport) and the Redis client (coordination): built lazily, never at import.

Redis carries Dramatiq's messages (or RabbitMQ does, with an ``amqp://`` BROKER_URL) and the
engine's small coordination keys: attempt claims, cancel and pause flags, dispatcher wake-ups.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading

import dramatiq
import redis
from django.conf import settings
from dramatiq import Broker

from ..conf import taskhub_settings
from ..errors import import_extra
from . import embedded, hooks
from .redis_transport import TaskhubRedisBroker

logger = logging.getLogger(__name__)

#: The one Dramatiq actor every task runs through; the row says which handler it is.
EXECUTE_ACTOR = "taskhub_execute"


def redis_url() -> str:
    """REDIS_URL, or the embedded server's socket when it is empty."""
    return settings.REDIS_URL or f"unix://{embedded.socket_path()}"


def broker_url() -> str:
    return getattr(settings, "BROKER_URL", "") or redis_url()


def uses_embedded_redis() -> bool:
    return not settings.REDIS_URL


def ensure_redis() -> None:
    """Make sure the coordination Redis is reachable (starts the embedded one if that's ours)."""
    if uses_embedded_redis():
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


def build_broker(middleware=None, **options) -> Broker:
    """Dramatiq broker factory named in DRAMATIQ_BROKER (django_dramatiq calls it at startup).

    Only builds clients; nothing connects until the broker is used.
    """
    url = broker_url()
    if url.startswith(("amqp://", "amqps://")):
        # Imported only when RabbitMQ carries the messages: it loads pika (the [rabbitmq] extra).
        import_extra("pika", extra="rabbitmq", needed_by="RabbitMQ as taskhub's broker")
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url, middleware=middleware, confirm_delivery=True, **options)
    # maintenance_chance=0: the lifeline recovers lost work deterministically; Dramatiq's own
    # random requeue of a dead worker's messages could replay an attempt hours later.
    return TaskhubRedisBroker(
        url=url,
        middleware=middleware,
        namespace=dramatiq_namespace(),
        maintenance_chance=0,
        **options,
    )


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
    except (redis.RedisError, OSError) as exc:
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
