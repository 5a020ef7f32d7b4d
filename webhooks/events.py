"""taskhub's lifecycle events as webhooks: task.completed, task.retrying, task.failed,
task.dead_lettered, task.cancelled — and the domain events of the signals listed in
``WEBHOOKS["SIGNALS"]`` (notification.created, blockchain.event, operator alerts …).

taskhub sends ``tasks_finished`` after each batch of attempt outcomes commits (on the worker's
writer thread); this receiver publishes them. It must stay cheap when nobody listens, so the
list of active endpoints is cached per process and reloaded when a Redis version key says an
endpoint changed (or after MAX_AGE). Webhooks' own tasks are never reported: a delivery about a
delivery would feed itself.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import redis
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from taskhub import TaskStatus
from taskhub.console.services import redis_key, shared_redis

from .conf import webhooks_settings
from .models import WebhookEndpoint

logger = logging.getLogger(__name__)
MAX_AGE = 30.0
_EVENTS = {
    TaskStatus.COMPLETED: ("task.completed",),
    TaskStatus.RETRYING: ("task.retrying",),
    TaskStatus.FAILED: ("task.failed", "task.dead_lettered"),
    TaskStatus.CANCELLED: ("task.cancelled",),
}
_cache_lock = threading.Lock()
_cache: dict = {"version": None, "at": 0.0, "endpoints": []}


def _version_key() -> str:
    return redis_key("webhooks", "endpoints-version")


def endpoints_changed() -> None:
    """Tell every process to reload its endpoint list (called after an endpoint change commits)."""
    try:
        shared_redis().incr(_version_key())
    except (redis.RedisError, OSError) as exc:
        logger.debug(
            "endpoint change not announced (processes reload within %ss): %s", MAX_AGE, exc
        )


def forget_endpoints() -> None:
    """Drop this process's cached endpoint list (tests)."""
    with _cache_lock:
        _cache.update(version=None, at=0.0, endpoints=[])


def active_endpoints() -> list[WebhookEndpoint]:
    try:
        version = shared_redis().get(_version_key())
    except (redis.RedisError, OSError):
        version = object()  # unknown: reload
    with _cache_lock:
        fresh = time.monotonic() - _cache["at"] < MAX_AGE
        if fresh and version == _cache["version"]:
            return _cache["endpoints"]
        endpoints = list(WebhookEndpoint.objects.filter(active=True))
        _cache.update(version=version, at=time.monotonic(), endpoints=endpoints)
        return endpoints


def task_event_payload(outcome) -> dict:
    data = {
        "task_id": str(outcome.task_id),
        "name": outcome.name,
        "queue": outcome.queue,
        "status": str(outcome.status),
        "attempt": outcome.attempt,
        "finished_at": outcome.finished_at.isoformat(),
    }
    if outcome.status == TaskStatus.COMPLETED:
        data["result"] = json.loads(json.dumps(outcome.result, default=str))
    else:
        data["error"] = outcome.error
    if outcome.retry_at is not None:
        data["retry_at"] = outcome.retry_at.isoformat()
    return data


def publish_task_events(sender, outcomes, **kwargs) -> None:
    """Receiver of taskhub.engine.signals.tasks_finished."""
    from .services import publish_many

    if not webhooks_settings.LIFECYCLE_EVENTS:
        return
    relevant = [o for o in outcomes if not o.name.startswith("webhooks.")]
    if not relevant:
        return
    names = {name for names in _EVENTS.values() for name in names}
    if not any(e.subscribes_to(n) for e in active_endpoints() for n in names):
        return  # the common case: nobody listens, and it cost one Redis GET
    events = [
        (event, task_event_payload(o)) for o in relevant for event in _EVENTS.get(o.status, ())
    ]
    publish_many(events)  # reads the endpoints afresh: the cache only answers "anyone?"


def publish_signalled_event(sender, event, **kwargs) -> None:
    """Receiver of the domain signals in ``WEBHOOKS["SIGNALS"]``: ``event`` is
    ``{"type": ..., "data": {...}}``. It runs in the sender's transaction, so the delivery is
    stored (and sent) exactly when the sender's change commits."""
    from .services import publish

    event_type, data = event["type"], event.get("data") or {}
    if not any(e.subscribes_to(event_type) for e in active_endpoints()):
        return  # nobody listens: one Redis GET, no query
    publish(event_type, data)


def connect_domain_signals() -> None:
    """Connect ``publish_signalled_event`` to each signal named in ``WEBHOOKS["SIGNALS"]``."""
    for path in webhooks_settings.SIGNALS:
        try:
            signal = import_string(path)
        except ImportError as exc:
            raise ImproperlyConfigured(f'WEBHOOKS["SIGNALS"]: cannot import {path!r}') from exc
        signal.connect(publish_signalled_event, dispatch_uid=f"webhooks.signal:{path}")
