"""BullMQ's job options and job shape for the task-queue API (``/api/task-queue/*``).

A BullMQ client calls ``queue.add(name, data, opts)``; over REST it sends either that call's
parts (``{"name": …, "data": {…}, "opts": {…}}``) or, as the task-queue document's routes always
took it, the data with the options beside it. Both are read here into the task's payload and
the arguments of :func:`taskhub.engine.enqueue.schedule`, with BullMQ's meaning (``delay`` and
``backoff`` in milliseconds, ``priority`` 1 = highest, ``jobId`` / ``deduplication`` as
duplicate guards). Every key is either honoured, or refused with a 400 saying why: nothing a
client asks for is dropped silently. The mapping back — a task shown as a BullMQ job, with its
``opts`` — is :func:`bullmq_opts`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ...conf import taskhub_settings
from ...definitions.priorities import PRIORITIES
from ...definitions.registry import TaskDefinition
from ...definitions.retry import Exponential, RetryPolicy, Schedule
from ...errors import InvalidTaskRequest
from ...models import Task

#: BullMQ's highest priority number (2^21 - 1; 0 means "no priority")
MAX_BULLMQ_PRIORITY = 2_097_151
#: taskhub priority = PRIORITY_OFFSET - BullMQ priority: 1 → 10 (critical), 6 → 5 (high),
#: 11 → 0 (normal), 16 → -5 (low); from 111 on, -100 (the lowest)
PRIORITY_OFFSET = 11
MAX_DELAY_MS = 366 * 86400 * 1000
MAX_ID_LENGTH = 128

#: the options honoured (see the module's docstring and docs/api.md)
OPTIONS = frozenset(
    {
        "delay",
        "priority",
        "attempts",
        "backoff",
        "timeout",
        "jobId",
        "deduplication",
        "deduplicationKey",
        "removeOnComplete",
        "removeOnFail",
    }
)
#: BullMQ options taskhub cannot honour, with the reason the 400 gives
REFUSED = {
    "lifo": "taskhub starts jobs by priority, then oldest first; there is no last-in-first-out",
    "repeat": "repeating jobs are schedules: POST /api/schedules",
    "parent": "jobs with children are workflows: POST /api/workflows",
    "failParentOnFailure": "jobs with children are workflows: POST /api/workflows",
    "continueParentOnFailure": "jobs with children are workflows: POST /api/workflows",
    "ignoreDependencyOnFailure": "jobs with children are workflows: POST /api/workflows",
    "removeDependencyOnFailure": "jobs with children are workflows: POST /api/workflows",
    "repeatJobKey": "repeating jobs are schedules: POST /api/schedules",
    "prevMillis": "repeating jobs are schedules: POST /api/schedules",
    "timestamp": "the creation time is the server's",
    "keepLogs": "a job's log lines are kept with it until the retention prune",
    "stackTraceLimit": "the last attempt's full traceback is kept",
    "sizeLimit": "the payload limit is the server's MAX_PAYLOAD_BYTES",
    "rateLimiterKey": "rate limits are per queue (the QUEUES setting)",
    "telemetry": "taskhub traces through its correlation id",
}
ENVELOPE = frozenset({"name", "data", "opts"})


@dataclass
class JobRequest:
    """A task-queue request read: the payload to validate and ``schedule()``'s options."""

    payload: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)


def _error(name: str, message: str) -> InvalidTaskRequest:
    return InvalidTaskRequest(f"{name}: {message}", field=name, errors={name: [message]})


def _number(name: str, value: Any, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _error(name, "must be a number")
    if not low <= value <= high:
        raise _error(name, f"must be from {low:g} to {high:g}")
    return value


def _whole(name: str, value: Any, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error(name, "must be a whole number")
    if not low <= value <= high:
        raise _error(name, f"must be from {low} to {high}")
    return value


def _identifier(name: str, value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        raise _error(name, f"must be a string of 1 to {MAX_ID_LENGTH} characters")
    return value


def split_request(definition: TaskDefinition, body: Any) -> JobRequest:
    """The payload and options of a task-queue POST body, in either shape; InvalidTaskRequest
    (a 400, nothing written) for anything that is neither a payload field nor an option."""
    if not isinstance(body, dict):
        raise InvalidTaskRequest("The body must be a JSON object.", field="non_field_errors")
    if "data" in body and set(body) <= ENVELOPE:
        # queue.add(name, data, opts): the kind in the path decides the task; ``name`` is
        # BullMQ's label for the processor, which here is that task.
        name, data, opts = body.get("name"), body["data"], body.get("opts", {})
        if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 200):
            raise _error("name", "must be a string of 1 to 200 characters")
        if not isinstance(data, dict):
            raise _error("data", "must be a JSON object (the job's data)")
        if not isinstance(opts, dict):
            raise _error("opts", "must be a JSON object (BullMQ's JobsOptions)")
        unknown = sorted(set(opts) - OPTIONS)
        _refuse_options(unknown, where="opts")
        _refuse_unknown_fields(definition, data)
        return JobRequest(dict(data), read_options(definition, opts))
    payload = {k: v for k, v in body.items() if k not in OPTIONS}
    # A refused option's name that is also a field of the task (analytics' ``timestamp``) is
    # the field: in this shape the schema decides.
    fields = _field_names(definition)
    refused = sorted(k for k in payload if k in REFUSED and (fields is None or k not in fields))
    _refuse_options(refused, where="the body")
    _refuse_unknown_fields(definition, payload)
    return JobRequest(payload, read_options(definition, {k: body[k] for k in OPTIONS & set(body)}))


def _refuse_options(keys: list[str], *, where: str) -> None:
    if not keys:
        return
    reasons = {k: [REFUSED.get(k, "not a BullMQ job option taskhub knows")] for k in keys}
    listed = "; ".join(f"{k}: {r[0]}" for k, r in reasons.items())
    raise InvalidTaskRequest(
        f"unsupported option(s) in {where}: {listed}. Supported: {', '.join(sorted(OPTIONS))}",
        field=keys[0],
        errors=reasons,
    )


def _field_names(definition: TaskDefinition) -> set[str] | None:
    """The payload keys the task's schema reads (names and aliases); None when it takes any."""
    schema = definition.schema
    if schema is None or schema.model_config.get("extra") == "allow":
        return None
    known = set()
    for name, info in schema.model_fields.items():
        known.add(name)
        if info.alias:
            known.add(info.alias)
    return known


def _refuse_unknown_fields(definition: TaskDefinition, payload: dict[str, Any]) -> None:
    """A key the task's schema does not know would be stored and ignored (as
    ``deduplicationKey`` once was): refused, naming the fields the task takes."""
    known = _field_names(definition)
    if known is None:
        return
    unknown = sorted(set(payload) - known)
    if unknown:
        schema = definition.schema
        fields = ", ".join(sorted(info.alias or n for n, info in schema.model_fields.items()))
        message = (
            f"unknown field(s) {', '.join(unknown)}: {definition.name} takes {fields}; "
            f"job options: {', '.join(sorted(OPTIONS))}"
        )
        raise InvalidTaskRequest(message, field=unknown[0], errors={k: [message] for k in unknown})


def read_options(definition: TaskDefinition, opts: dict[str, Any]) -> dict[str, Any]:
    """BullMQ's JobsOptions as keyword arguments of ``schedule()``."""
    out: dict[str, Any] = {}
    if "delay" in opts:
        out["delay"] = _number("delay", opts["delay"], low=0, high=MAX_DELAY_MS) / 1000
    if "timeout" in opts:  # Bull 3's per-job timeout (ms), which taskhub keeps per task
        out["timeout"] = _number("timeout", opts["timeout"], low=1, high=MAX_DELAY_MS) / 1000
    if "priority" in opts:
        out["priority"] = taskhub_priority(opts["priority"])
    if "attempts" in opts:
        out["max_attempts"] = _whole("attempts", opts["attempts"], low=1, high=100)
    if "backoff" in opts:
        _check_backoff(definition, opts["backoff"])
    for name in ("removeOnComplete", "removeOnFail"):
        if name in opts:
            _check_keep_jobs(name, opts[name])
    out.update(_dedup(definition, opts))
    return out


def taskhub_priority(value: Any) -> int:
    """BullMQ's number (0 = none, 1 = highest … 2097151) or one of taskhub's names."""
    if isinstance(value, str) and value.lower() in PRIORITIES:
        return PRIORITIES[value.lower()]
    if isinstance(value, bool) or not isinstance(value, int):
        names = ", ".join(PRIORITIES)
        raise _error(
            "priority",
            f"must be BullMQ's number (1 highest to {MAX_BULLMQ_PRIORITY}; 0 for none) "
            f"or one of {names}",
        )
    number = _whole("priority", value, low=0, high=MAX_BULLMQ_PRIORITY)
    return 0 if number == 0 else max(-100, PRIORITY_OFFSET - number)


def bullmq_priority(priority: int) -> int:
    """The BullMQ number that maps to a taskhub priority (0 for normal)."""
    return 0 if priority == 0 else max(1, PRIORITY_OFFSET - priority)


def bullmq_backoff(policy: RetryPolicy) -> dict[str, Any] | None:
    """A task's retry policy in BullMQ's words, when BullMQ has them."""
    if isinstance(policy, Exponential) and policy.base == 2 and not policy.jitter:
        first = policy.initial if policy.initial is not None else 2.0
        return {"type": "exponential", "delay": round(first * 1000)}
    if isinstance(policy, Schedule) and len(set(policy.delays)) == 1:
        return {"type": "fixed", "delay": round(policy.delays[0] * 1000)}
    return None


def _check_backoff(definition: TaskDefinition, value: Any) -> None:
    """taskhub keeps one retry policy per task type, not per job: a ``backoff`` equal to the
    queue's is accepted (clients often restate the default), any other is refused."""
    if isinstance(value, dict):
        if unknown := sorted(set(value) - {"type", "delay"}):
            raise _error("backoff", f"has no key {', '.join(unknown)} (type and delay)")
        kind = value.get("type")
        if kind not in ("fixed", "exponential"):
            raise _error("backoff", "type must be 'fixed' or 'exponential'")
        delay = _number("backoff.delay", value.get("delay", 0), low=0, high=MAX_DELAY_MS)
        asked = {"type": kind, "delay": round(delay)}
    else:
        delay = _number("backoff", value, low=0, high=MAX_DELAY_MS)
        asked = {"type": "fixed", "delay": round(delay)}
    own = bullmq_backoff(definition.retry_policy)
    if asked != own:
        mine = f"{own['type']} from {own['delay']} ms" if own else "its own schedule"
        raise _error(
            "backoff",
            f"per-job backoff is not supported: the {definition.queue} queue retries "
            f"{mine} (send that, or leave backoff out)",
        )


def _check_keep_jobs(name: str, value: Any) -> None:
    """BullMQ's ``true`` / a count / ``{age, count, limit}``: shape checked; finished jobs stay
    as the history operators read (until the retention prune or an admin), as docs/api.md says."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        _whole(name, value, low=0, high=2**31)
        return
    if isinstance(value, dict) and value and set(value) <= {"age", "count", "limit"}:
        for key, number in value.items():
            _whole(f"{name}.{key}", number, low=0, high=2**31)
        return
    raise _error(name, "must be true/false, a count, or {age, count}")


def _dedup(definition: TaskDefinition, opts: dict[str, Any]) -> dict[str, Any]:
    """``jobId``, ``deduplication: {id, ttl}`` and the older ``deduplicationKey`` as taskhub's
    dedup key (one per task), namespaced by queue as BullMQ's ids are."""
    queue = definition.queue
    dedup_id, ttl = None, None
    if "deduplication" in opts:
        value = opts["deduplication"]
        if not isinstance(value, dict) or "id" not in value:
            raise _error("deduplication", "must be an object with an id")
        if unknown := sorted(set(value) - {"id", "ttl", "extend", "replace"}):
            raise _error("deduplication", f"has no key {', '.join(unknown)}")
        for flag in ("extend", "replace"):
            if value.get(flag) not in (None, False):
                raise _error(
                    f"deduplication.{flag}",
                    "is not supported: a duplicate is answered with the first job, unchanged",
                )
        dedup_id = _identifier("deduplication.id", value["id"])
        if "ttl" in value:
            ttl = _number("deduplication.ttl", value["ttl"], low=1, high=MAX_DELAY_MS) / 1000
    if "deduplicationKey" in opts:
        key = _identifier("deduplicationKey", opts["deduplicationKey"])
        if dedup_id is not None and key != dedup_id:
            raise _error("deduplicationKey", "differs from deduplication.id: send one of them")
        dedup_id = key
    if "jobId" in opts:
        job_id = _identifier("jobId", opts["jobId"])
        if dedup_id is not None:
            raise _error("jobId", "and deduplication are both duplicate guards: send one")
        # BullMQ ignores a second add with the same jobId while the job exists; taskhub's
        # completed jobs exist until the retention prune, hence the window.
        return {
            "dedup_key": f"bullmq:{queue}:job:{job_id}",
            "dedup_window": taskhub_settings.RETENTION_DAYS * 86400,
        }
    if dedup_id is None:
        return {}
    return {"dedup_key": f"bullmq:{queue}:dedup:{dedup_id}", "dedup_window": ttl}


def delay_ms(task: Task) -> int:
    """How long after its creation the job may start, in milliseconds (BullMQ's job.delay)."""
    return max(0, round((task.scheduled_at - task.created_at).total_seconds() * 1000))


def bullmq_opts(task: Task, definition: TaskDefinition | None) -> dict[str, Any]:
    """The job's options as BullMQ shows them, read back from the row."""
    opts: dict[str, Any] = {
        "attempts": task.max_attempts,
        "delay": delay_ms(task),
        "priority": bullmq_priority(task.priority),
    }
    if definition is not None and (backoff := bullmq_backoff(definition.retry_policy)):
        opts["backoff"] = backoff
    if task.timeout:
        opts["timeout"] = round(task.timeout * 1000)
    key = task.dedup_key or ""
    prefix = f"bullmq:{task.queue}:"
    if key.startswith(prefix + "job:"):
        opts["jobId"] = key.removeprefix(prefix + "job:")
    elif key.startswith(prefix + "dedup:"):
        opts["deduplication"] = {"id": key.removeprefix(prefix + "dedup:")}
    elif key:
        opts["deduplication"] = {"id": key}
    return opts
