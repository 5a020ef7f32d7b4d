"""Task types the benchmarks run (registered in every bench process via INSTALLED_APPS)."""

from __future__ import annotations

import functools
import os
import threading
import time

import redis
from pydantic import BaseModel, Field

from taskhub import Schedule, task
from taskhub.builtins.http import HttpRequest, http_request
from taskhub.engine.broker import redis_url
from taskhub.errors import TaskCancelled

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
    url = os.environ.get("BENCH_RECORD_REDIS_URL") or redis_url()
    return redis.Redis.from_url(url, socket_timeout=10)


@task("bench.fault", queue=QUEUE, schema=FaultWork)
def fault_work(payload: FaultWork, ctx) -> None:
    """Records each start of its handler (to count duplicates), then works a little."""
    _recorder().rpush(payload.record, f"{ctx.task_id}:{ctx.attempt}")
    time.sleep(payload.seconds)


# -- the combined fault run (bench/chaos.py) ------------------------------------------------------
#: Directory of the independent record of handler starts and ends (one file per process).
CHAOS_RECORD_ENV = "BENCH_CHAOS_RECORD_DIR"
_record_lock = threading.Lock()
_record_files: dict[int, int] = {}


def chaos_record(mark: str, task_id: str, attempt: int, how: str = "") -> None:
    """Append one line to this process's record: ``S|E task_id attempt pid time how``.

    A plain file beside the engine, so that no fault the drill injects (a flushed or stalled
    Redis, killed database sessions, a wedged outcome writer) can change it; O_APPEND and one
    write() per line keep lines whole when threads write at once, and a line is in the kernel
    once write() returns, so a SIGKILL right after cannot lose it.
    """
    directory = os.environ.get(CHAOS_RECORD_ENV)
    if not directory:
        return
    pid = os.getpid()
    with _record_lock:
        fd = _record_files.get(pid)
        if fd is None:
            path = os.path.join(directory, f"record-{pid}.log")
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            _record_files[pid] = fd
    os.write(fd, f"{mark} {task_id} {attempt} {pid} {time.time():.6f} {how}\n".encode())


class ChaosWork(BaseModel):
    kind: str = Field(pattern="^(noop|slow|flaky|cancel|nul|step)$")
    seconds: float = Field(default=0.0, ge=0, le=30)
    fail_times: int = Field(default=0, ge=0, le=10)
    value: int = 1


class PlannedFailure(Exception):
    """What a failing-then-succeeding chaos task raises on its first attempts."""


@task(
    "bench.chaos.work",
    queue=QUEUE,
    schema=ChaosWork,
    max_attempts=40,
    retry=Schedule([0.2, 0.5, 1.0]),
)
def chaos_work(payload: ChaosWork, ctx) -> dict:
    """Every kind of work the chaos run mixes; records each start and how the handler ended.

    Lost attempts (kills) count against max_attempts, hence the generous budget: a task must
    only end ``failed`` if the engine gave up on it, never for want of attempts.
    """
    chaos_record("S", ctx.task_id, ctx.attempt, payload.kind)
    try:
        result = _chaos_body(payload, ctx)
    except PlannedFailure:
        chaos_record("E", ctx.task_id, ctx.attempt, "planned-failure")
        raise
    except TaskCancelled:
        chaos_record("E", ctx.task_id, ctx.attempt, "cancelled")
        raise
    except BaseException as exc:
        chaos_record("E", ctx.task_id, ctx.attempt, f"error:{type(exc).__name__}")
        raise
    chaos_record("E", ctx.task_id, ctx.attempt, "ok")
    return result


def _chaos_body(payload: ChaosWork, ctx) -> dict:
    if payload.kind == "flaky" and ctx.attempt <= payload.fail_times:
        raise PlannedFailure(f"planned failure on attempt {ctx.attempt}")
    if payload.kind == "cancel":
        # Long enough for the drill to cancel it while it runs; it stops at a checkpoint. Only
        # the first attempt runs that long: a later one (retried after its cancel, or after a
        # kill) only has to show that it runs again — at 5 s each, the retried half of them
        # alone kept ~6 threads busy in the 10-minute run.
        seconds = payload.seconds if ctx.attempt == 1 else min(payload.seconds, 0.5)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ctx.check_cancelled()
            time.sleep(0.05)
    elif payload.seconds:
        time.sleep(payload.seconds)
    if payload.kind == "nul":
        # PostgreSQL's jsonb cannot hold U+0000: the engine must still record an outcome.
        return {"text": "before\x00after", "items": ["\x00", "ok"], "value": payload.value}
    return {"value": payload.value}


class ChaosSum(BaseModel):
    group: str


@task("bench.chaos.sum", queue=QUEUE, schema=ChaosSum, max_attempts=40, retry=Schedule([0.2]))
def chaos_sum(payload: ChaosSum, ctx) -> dict:
    """A workflow's fan-in: the sum of its fan-out's values, read from their rows."""
    chaos_record("S", ctx.task_id, ctx.attempt, "sum")
    results = ctx.results.get(payload.group) or []
    total = {"sum": sum((r or {}).get("value", 0) for r in results), "count": len(results)}
    chaos_record("E", ctx.task_id, ctx.attempt, "ok")
    return total
