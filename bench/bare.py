"""Bare Dramatiq — the baseline taskhub is measured against: the same Redis, its own namespace,
no Django and no database. The harness sends with :func:`build`; workers run bench.bare_worker.
"""

from __future__ import annotations

import functools

import dramatiq
import httpx
from dramatiq.brokers.redis import RedisBroker

QUEUE = "bench"


def noop() -> None:
    return None


@functools.cache
def _client() -> httpx.Client:
    # What a Dramatiq user writes: one client (one connection pool) per worker process.
    return httpx.Client(timeout=10)


def http_get(url: str) -> None:
    _client().get(url).raise_for_status()


def build(url: str, namespace: str) -> tuple[RedisBroker, dict[str, dramatiq.Actor]]:
    """A vanilla RedisBroker and the bench actors declared on it (not the global broker)."""
    broker = RedisBroker(url=url, namespace=namespace)
    actors = {
        "noop": dramatiq.actor(noop, broker=broker, actor_name="bare_noop", queue_name=QUEUE),
        "http_get": dramatiq.actor(
            http_get, broker=broker, actor_name="bare_http_get", queue_name=QUEUE
        ),
    }
    return broker, actors
