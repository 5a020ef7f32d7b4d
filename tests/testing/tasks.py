"""Task types of the testing-support tests. They run in this test process only (that is the
point of taskhub.testing), so what they record is a plain list, not Redis."""

from __future__ import annotations

from collections import defaultdict

from pydantic import BaseModel

from taskhub import PermanentError, schedule, task
from taskhub.definitions.retry import Schedule

#: What each handler saw, by task name: (payload, attempt, ctx) per call.
calls: dict[str, list] = defaultdict(list)


class Greeting(BaseModel):
    to: str
    excited: bool = False


@task("testing.greet", queue="testing", schema=Greeting, max_attempts=3)
def greet(payload: Greeting, ctx) -> dict:
    calls["testing.greet"].append((payload, ctx.attempt, ctx))
    ctx.logger.info("greeting %s", payload.to)
    ctx.set_progress(40)
    return {"greeted": payload.to, "excited": payload.excited}


@task("testing.flaky", queue="testing", retry=Schedule([0]), max_attempts=4)
def flaky(payload: dict, ctx) -> dict:
    """Fails its first ``fail_times`` attempts; its retries are due at once (a 0 s delay)."""
    calls["testing.flaky"].append((payload, ctx.attempt, ctx))
    if ctx.attempt <= payload["fail_times"]:
        raise ConnectionError(f"provider down (attempt {ctx.attempt})")
    return {"succeeded_on": ctx.attempt}


@task("testing.always_fails", queue="testing", retry=Schedule([30, 120]), max_attempts=3)
def always_fails(payload: dict, ctx) -> None:
    calls["testing.always_fails"].append((payload, ctx.attempt, ctx))
    raise RuntimeError(f"boom on attempt {ctx.attempt}")


@task("testing.permanent", queue="testing", max_attempts=5)
def permanent(payload: dict, ctx) -> None:
    calls["testing.permanent"].append((payload, ctx.attempt, ctx))
    raise PermanentError("address cannot exist")


@task("testing.chain", queue="testing")
def chain(payload: dict, ctx) -> str:
    """Schedules a greeting in another queue, from inside the handler."""
    calls["testing.chain"].append((payload, ctx.attempt, ctx))
    schedule("testing.other", {"to": payload["to"]}, correlation_id=ctx.correlation_id)
    return "chained"


@task("testing.other", queue="testing-other")
def other(payload: dict, ctx) -> str:
    calls["testing.other"].append((payload, ctx.attempt, ctx))
    return f"hello {payload['to']}"


@task("testing.forever", queue="testing")
def forever(payload: dict) -> int:
    """Schedules itself again: a drain must give up at its limit."""
    schedule("testing.forever", {"n": payload["n"] + 1})
    return payload["n"]


@task("testing.value", queue="testing")
def value(payload: dict, ctx) -> dict:
    """A workflow step: returns its ``value`` and what its dependencies returned."""
    calls["testing.value"].append((payload, ctx.attempt, ctx))
    if payload.get("fail"):
        raise PermanentError(f"{payload['name']} was told to fail")
    return {"name": payload["name"], "value": payload.get("value", 0), "read": ctx.results}


@task("testing.total", queue="testing")
def total(payload: dict, ctx) -> int:
    """A fan-in: adds up the values of the fan-out ``group``."""
    calls["testing.total"].append((payload, ctx.attempt, ctx))
    return sum(member["value"] for member in ctx.results[payload["group"]])


@task("testing.undo", queue="testing")
def undo(payload: dict, ctx) -> str:
    """A compensation: records the step it undoes."""
    calls["testing.undo"].append((payload, ctx.attempt, ctx))
    return f"undid {ctx.forward.step}"


@task("testing.parent", queue="testing")
def parent(payload: dict, ctx) -> str:
    """Spawns ``children`` children; completes once they have."""
    calls["testing.parent"].append((payload, ctx.attempt, ctx))
    for index in range(payload["children"]):
        ctx.spawn("testing.value", {"name": f"child-{index}", "value": index})
    return "spawned"


@task("testing.fails_fast", queue="testing", retry=Schedule([0]), max_attempts=3)
def fails_fast(payload: dict, ctx) -> None:
    """Always fails; each retry is due at once."""
    calls["testing.fails_fast"].append((payload, ctx.attempt, ctx))
    ctx.logger.warning("attempt %s of %s", ctx.attempt, ctx.max_attempts)
    raise ValueError(f"bad input {payload}")


@task("testing.exits", queue="testing", max_attempts=2, retry=Schedule([0]))
def exits(payload: dict, ctx) -> None:
    calls["testing.exits"].append((payload, ctx.attempt, ctx))
    raise SystemExit("handler called sys.exit")
