"""Task types the test suite runs through real workers.

Handlers record what happened in Redis (under the session's key prefix) so a test can see the
order and overlap of starts across processes, not just final rows.
"""

import logging
import time

from pydantic import BaseModel, Field

from taskhub import Exponential, Linear, PermanentError, Schedule, TaskType, task
from taskhub.engine.broker import get_redis, key


class Sleep(BaseModel):
    seconds: float = Field(default=0.0, ge=0, le=60)
    label: str = "default"


_TRACK = """
local running = redis.call('INCR', KEYS[1])
local peak = tonumber(redis.call('GET', KEYS[2]) or '0')
if running > peak then redis.call('SET', KEYS[2], running) end
redis.call('RPUSH', KEYS[3], ARGV[1])
return running
"""


def track_start(label: str, task_id: str) -> None:
    keys = [key("test", label, "running"), key("test", label, "peak"), key("test", label, "order")]
    get_redis().eval(_TRACK, 3, *keys, task_id)


def track_end(label: str, task_id: str) -> None:
    client = get_redis()
    client.decr(key("test", label, "running"))
    client.rpush(key("test", label, "runs"), task_id)


@task("test.noop")
def noop(payload: dict) -> None:
    return None


@task("test.typed.payment", type=TaskType.PAYMENT_PROCESSING)
def typed_payment(payload: dict) -> None:
    return None


@task("test.typed.kyc", type="kyc_verification")
def typed_kyc(payload: dict) -> None:
    return None


@task("test.sleep", schema=Sleep)
def sleep(payload: Sleep, ctx) -> dict:
    track_start(payload.label, ctx.task_id)
    try:
        time.sleep(payload.seconds)
    finally:
        track_end(payload.label, ctx.task_id)
    return {"slept": payload.seconds, "attempt": ctx.attempt}


@task("test.sleep_capped", queue="capped", schema=Sleep)
def sleep_capped(payload: Sleep, ctx) -> dict:
    return sleep.func(payload, ctx)


@task("test.sleep_single", queue="single", schema=Sleep)
def sleep_single(payload: Sleep, ctx) -> dict:
    return sleep.func(payload, ctx)


@task("test.sleep_rated", queue="rated", schema=Sleep)
def sleep_rated(payload: Sleep, ctx) -> dict:
    return sleep.func(payload, ctx)


class FailTimes(BaseModel):
    times: int = 1


@task("test.fail_times", schema=FailTimes, retry=Schedule([0.2]))
def fail_times(payload: FailTimes, ctx) -> dict:
    if ctx.attempt <= payload.times:
        raise RuntimeError(f"planned failure {ctx.attempt} of {payload.times}")
    return {"succeeded_on": ctx.attempt}


@task("test.fail_schedule", retry=Schedule([1, 2]), max_attempts=3)
def fail_schedule(payload: dict) -> None:
    raise RuntimeError("always fails (schedule)")


@task("test.fail_exponential", retry=Exponential(base=2, cap=3), max_attempts=3)
def fail_exponential(payload: dict) -> None:
    raise RuntimeError("always fails (exponential)")


@task("test.fail_linear", retry=Linear(1.5, cap=2), max_attempts=3)
def fail_linear(payload: dict) -> None:
    raise RuntimeError("always fails (linear)")


@task("test.permanent", retry=Schedule([0.1]), max_attempts=5)
def permanent(payload: dict) -> None:
    raise PermanentError("card declined")


@task("test.slow_timeout", timeout=1, retry=Schedule([0.2]), max_attempts=2)
def slow_timeout(payload: dict) -> None:
    time.sleep(5)


@task("test.progress")
def progress(payload: dict, ctx) -> str:
    for step in (25, 50, 75):
        ctx.set_progress(step)
        ctx.logger.info("reached %d%%", step)
        time.sleep(0.15)
    return "done"


@task("test.cancellable")
def cancellable(payload: dict, ctx) -> str:
    track_start("cancellable", ctx.task_id)
    deadline = time.monotonic() + payload.get("seconds", 20)
    while time.monotonic() < deadline:
        ctx.check_cancelled()
        time.sleep(0.05)
    return "ran to the end"


@task("test.sleep_then_fail", schema=Sleep, retry=Schedule([0.2]), max_attempts=3)
def sleep_then_fail(payload: Sleep, ctx) -> None:
    """Ignores cancel requests: sleeps, then fails (so the retry policy would send it round)."""
    track_start(payload.label, ctx.task_id)
    try:
        time.sleep(payload.seconds)
    finally:
        track_end(payload.label, ctx.task_id)
    raise RuntimeError(f"planned failure of attempt {ctx.attempt}")


@task("test.bad_result")
def bad_result(payload: dict) -> object:
    return {1, 2, 3}


@task("test.sleep_task_rated", schema=Sleep, rate_limit=4)
def sleep_task_rated(payload: Sleep, ctx) -> dict:
    return sleep.func(payload, ctx)


from . import builtins_handlers  # noqa: E402, F401  (data handlers and receivers of tests/builtins)


# -- workflow steps: each records its step in Redis so tests see order and exactly-once -------
def _record(label: str, value: str) -> None:
    get_redis().rpush(key("test", "wf", label), value)


@task("test.wf.step", retry=Schedule([0.2]), max_attempts=2)
def wf_step(payload: dict, ctx) -> dict:
    """Records ``name``; fails (permanently with ``permanent``) if ``fail`` is set; sleeps
    ``seconds`` at cancel checkpoints; returns the payload's ``value`` and what it read."""
    name = payload.get("name", ctx.task_id)
    _record(payload.get("label", "runs"), name)
    deadline = time.monotonic() + payload.get("seconds", 0)
    while time.monotonic() < deadline:
        ctx.check_cancelled()
        time.sleep(0.05)
    if payload.get("fail") or (
        payload.get("fail_while")
        and get_redis().get(key("test", "wf", "fail", payload["fail_while"]))
    ):
        raise PermanentError(f"{name} was told to fail")
    return {"name": name, "value": payload.get("value"), "read": ctx.results}


@task("test.wf.sum")
def wf_sum(payload: dict, ctx) -> dict:
    """A fan-in: adds up the ``value`` of every result of the fan-out named ``group``."""
    _record(payload.get("label", "runs"), payload.get("name", "sum"))
    members = ctx.results.get(payload["group"], [])
    return {"count": len(members), "total": sum((m or {}).get("value") or 0 for m in members)}


@task("test.wf.undo", retry=Schedule([0.2]), max_attempts=2)
def wf_undo(payload: dict, ctx) -> dict:
    """A compensation: records the step it undoes; fails while Redis says so."""
    forward = ctx.forward
    client = get_redis()
    if client.get(key("test", "wf", "undo-fails", forward.step)):
        raise PermanentError(f"cannot undo {forward.step}")
    _record("undone", forward.step)
    return {
        "undid": forward.step,
        "forward_result": forward.result,
        "idempotency_key": forward.idempotency_key,
    }


@task("test.wf.parent")
def wf_parent(payload: dict, ctx) -> dict:
    """Spawns ``children`` children; completes once they have."""
    _record("parent", ctx.task_id)
    for index in range(payload.get("children", 0)):
        ctx.spawn(
            "test.wf.step",
            {"name": f"child-{index}", "value": index, "fail": index in payload.get("failing", [])},
        )
    return {"spawned": payload.get("children", 0)}


class LoggedSleep(BaseModel):
    seconds: float = Field(default=0.0, ge=0, le=120)
    path: str


@task("test.sleep_logged", schema=LoggedSleep)
def sleep_logged(payload: LoggedSleep, ctx) -> dict:
    """Appends each start to a file (not Redis: the drills that use it take Redis away)."""
    with open(payload.path, "a") as log:
        log.write(f"{ctx.task_id} {ctx.attempt}\n")
    time.sleep(payload.seconds)
    return {"slept": payload.seconds, "attempt": ctx.attempt}


# -- values a database may refuse: NUL (PostgreSQL text/jsonb) and lone surrogates (no UTF-8) ----
NUL_TEXT = "before\x00after"
SURROGATE_TEXT = "half a pair \ud800 here"


@task("test.unstorable.result")
def unstorable_result(payload: dict) -> dict:
    """Returns what an HTTP call to a binary endpoint would: text with NUL bytes in it."""
    return {"body": NUL_TEXT, "lone": SURROGATE_TEXT, NUL_TEXT: "a key too"}


@task("test.unstorable.error", max_attempts=1)
def unstorable_error(payload: dict) -> None:
    raise ValueError(f"{NUL_TEXT} / {SURROGATE_TEXT}")


@task("test.unstorable.retry", retry=Schedule([0.2]), max_attempts=2)
def unstorable_retry(payload: dict, ctx) -> str:
    if ctx.attempt == 1:
        raise RuntimeError(NUL_TEXT)
    return "second attempt"


@task("test.unstorable.log")
def unstorable_log(payload: dict, ctx) -> str:
    ctx.logger.info("log line: %s", NUL_TEXT)
    ctx.logger.warning(SURROGATE_TEXT)
    ctx.set_progress(50)
    time.sleep(0.3)  # long enough for the log lines to be flushed before the outcome
    return "logged"


# -- log lines: a handler that logs through a plain logger (not ctx.logger) ----------------------
handler_logger = logging.getLogger("tests.taskapp.handler")


class LogLine(BaseModel):
    marker: str


@task("test.log_line", schema=LogLine)
def log_line(payload: LogLine) -> str:
    """Logs an INFO line and a caught exception through a module logger: under LOG_FORMAT=json
    both carry the task's fields (taskhub.logging), though the handler never passes them."""
    handler_logger.info("handler line %s", payload.marker)
    try:
        raise ValueError(f"caught {payload.marker}")
    except ValueError:
        handler_logger.exception("handler exception %s", payload.marker)
    return payload.marker
