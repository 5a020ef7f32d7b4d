"""Task types the benchmarks run (registered in every bench process via INSTALLED_APPS)."""

from __future__ import annotations

import functools
import os
import time

import redis
from django.conf import settings
from pydantic import BaseModel, Field

from taskhub import task
from taskhub.builtins.http import HttpRequest, http_request

QUEUE = "bench"


@task("bench.noop", queue=QUEUE)
def noop(payload: dict) -> None:
    """Does nothing: what's left is the cost of tracking the task."""
    return None


@task("bench.probe", queue=QUEUE)
def probe(payload: dict) -> None:
    """A no-op named apart, so latency probes are easy to find among the load."""
    return None


class Value(BaseModel):
    value: int = 1


@task("bench.value", queue=QUEUE, schema=Value)
def value(payload: Value) -> int:
    """A no-op that returns its number (a workflow fan-out member; the fan-in sums them)."""
    return payload.value


class Total(BaseModel):
    group: str


@task("bench.sum", queue=QUEUE, schema=Total)
def total(payload: Total, ctx) -> dict:
    """A fan-in: the sum of a fan-out's results, read from their rows (ctx.results)."""
    results = ctx.results.get(payload.group) or []
    return {"sum": sum(r or 0 for r in results), "count": len(results)}


@task(
    "bench.http",
    queue=QUEUE,
    schema=HttpRequest,
    retry=http_request.retry,
    secret_fields=http_request.secret_fields,
)
def http(payload: HttpRequest, ctx) -> dict:
    """The built-in ``http.request`` handler (SSRF guard, logging, status rules) on the bench
    queue, so the I/O measure isn't capped by the ``default`` queue's concurrency."""
    return http_request.func(payload, ctx)


class FaultWork(BaseModel):
    seconds: float = Field(default=0.0, ge=0, le=10)
    record: str  # Redis list that gets one entry per handler start


@functools.cache
def _recorder() -> redis.Redis:
    # Fault drills flush or stop the engine's own stores; the record of runs lives elsewhere.
    url = os.environ.get("BENCH_RECORD_REDIS_URL") or settings.REDIS_URL
    return redis.Redis.from_url(url, socket_timeout=10)


@task("bench.fault", queue=QUEUE, schema=FaultWork)
def fault_work(payload: FaultWork, ctx) -> None:
    """Records each start of its handler (to count duplicates), then works a little."""
    _recorder().rpush(payload.record, f"{ctx.task_id}:{ctx.attempt}")
    time.sleep(payload.seconds)
