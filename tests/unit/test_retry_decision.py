"""How an attempt ended, turned into its outcome (taskhub.engine.worker.decide_outcome): a table of
cases, from the handler's return or exception to the status, the error and the retry delay.

The decision is a pure function of the attempt and how the handler ended (the task types are
tests/taskapp/tasks.py's); the last table checks what the outcome writer then makes of it in
the real database. No broker, no worker process.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.utils import timezone
from dramatiq.middleware import TimeLimitExceeded
from pydantic import BaseModel

from taskhub import schedule
from taskhub.conf import taskhub_settings
from taskhub.definitions.registry import get_definition
from taskhub.definitions.retry import Exponential, policy_from_config
from taskhub.engine.context import TaskContext
from taskhub.engine.outcomes import OutcomeWriter, StartedAttempt
from taskhub.engine.worker import MAX_RESULT_BYTES, Attempt, decide_outcome
from taskhub.errors import InvalidTaskRequest, PermanentError, TaskCancelled
from taskhub.models import DeadLetter, Task, TaskStatus


def attempt_of(
    name: str,
    number: int,
    max_attempts: int,
    *,
    result: Any = None,
    cancel_seen: bool = False,
    spawned: list | None = None,
) -> Attempt:
    definition = get_definition(name)
    task_id = str(uuid.uuid4())
    envelope = {
        "id": task_id,
        "name": name,
        "queue": definition.queue,
        "attempt": number,
        "max_attempts": max_attempts,
        "payload": {},
        "correlation_id": "",
        "user_id": "",
        "timeout": definition.timeout or taskhub_settings.DEFAULT_TIMEOUT,
        "coordinated": False,
    }
    ctx = TaskContext(
        task_id=task_id,
        name=name,
        queue=definition.queue,
        attempt=number,
        max_attempts=max_attempts,
        correlation_id="",
        user_id="",
        _writer=None,
    )
    ctx.cancel_seen = cancel_seen
    ctx.spawned = spawned or []
    start = StartedAttempt(task_id, number, timezone.now(), time.monotonic())
    return Attempt(envelope=envelope, ctx=ctx, start=start, result=result, returned=True)


class Report(BaseModel):
    charged: int


@dataclass
class Case:
    name: str
    attempt: int
    max_attempts: int
    exception: BaseException | None = None
    result: Any = None
    cancel_seen: bool = False
    spawned: list = field(default_factory=list)
    # expected
    status: str = TaskStatus.COMPLETED
    error: str = ""  # a part of the error the outcome must carry
    permanent: bool | None = None  # for a failure: whether it is recorded as permanent
    delay: float | None = None  # for a retry: seconds until the next attempt
    stored: Any = None  # for a completion: the result as stored


def failure(name: str, attempt: int, max_attempts: int) -> dict:
    return dict(
        name=name,
        attempt=attempt,
        max_attempts=max_attempts,
        exception=RuntimeError("boom"),
        error="RuntimeError: boom",
    )


CASES = {
    # -- the handler returned -------------------------------------------------------------
    "success": Case("test.noop", 1, 5, result={"ok": [1, 2]}, stored={"ok": [1, 2]}),
    "success on the last attempt": Case("test.noop", 5, 5, result=7, stored=7),
    "a pydantic result is stored as JSON": Case(
        "test.noop", 1, 5, result=Report(charged=3), stored={"charged": 3}
    ),
    "returned after seeing a cancel": Case(
        "test.noop",
        1,
        5,
        result="done",
        cancel_seen=True,
        status=TaskStatus.CANCELLED,
        error="cancelled while running",
    ),
    "returned having spawned children": Case(
        "test.noop",
        1,
        5,
        result="parent",
        spawned=["a child"],
        status=TaskStatus.BLOCKED,
        stored="parent",
    ),
    "a result that is not JSON": Case(
        "test.noop",
        1,
        5,
        result={1, 2},
        status=TaskStatus.FAILED,
        error="not JSON-serialisable",
        permanent=True,
    ),
    "a NaN result (not JSON either)": Case(
        "test.noop",
        1,
        5,
        result=math.nan,
        status=TaskStatus.FAILED,
        error="not JSON-serialisable",
        permanent=True,
    ),
    "a result over the size limit": Case(
        "test.noop",
        1,
        5,
        result="x" * MAX_RESULT_BYTES,
        status=TaskStatus.FAILED,
        error="over the limit",
        permanent=True,
    ),
    # -- the handler raised ---------------------------------------------------------------
    "a failure with attempts left": Case(
        **failure("test.fail_schedule", 1, 3), status=TaskStatus.RETRYING, delay=1
    ),
    "the second failure takes the second delay": Case(
        **failure("test.fail_schedule", 2, 3), status=TaskStatus.RETRYING, delay=2
    ),
    "a failure on the last attempt": Case(
        **failure("test.fail_schedule", 3, 3), status=TaskStatus.FAILED, permanent=False
    ),
    "a failure past the last attempt (limit lowered)": Case(
        **failure("test.fail_schedule", 4, 3), status=TaskStatus.FAILED, permanent=False
    ),
    "PermanentError with attempts left": Case(
        "test.permanent",
        1,
        5,
        exception=PermanentError("card declined"),
        status=TaskStatus.FAILED,
        error="PermanentError: card declined",
        permanent=True,
    ),
    "InvalidTaskRequest (bad payload) with attempts left": Case(
        "test.noop",
        1,
        5,
        exception=InvalidTaskRequest("bad payload"),
        status=TaskStatus.FAILED,
        error="bad payload",
        permanent=True,
    ),
    "a timeout with attempts left": Case(
        "test.slow_timeout",
        1,
        2,
        exception=TimeLimitExceeded(),
        status=TaskStatus.RETRYING,
        error="timed out after 1 s",
        delay=0.2,
    ),
    "a timeout on the last attempt": Case(
        "test.slow_timeout",
        2,
        2,
        exception=TimeLimitExceeded(),
        status=TaskStatus.FAILED,
        error="timed out after 1 s",
        permanent=False,
    ),
    "cancelled at a checkpoint": Case(
        "test.cancellable",
        1,
        5,
        exception=TaskCancelled("cancel requested"),
        status=TaskStatus.CANCELLED,
        error="cancel requested",
    ),
    # -- each retry policy's delay --------------------------------------------------------
    "Schedule: the default schedule's first delay": Case(
        **failure("test.noop", 1, 5),
        status=TaskStatus.RETRYING,
        delay=taskhub_settings.DEFAULT_RETRY_SCHEDULE[0],
    ),
    "Schedule: the default schedule's fourth delay": Case(
        **failure("test.noop", 4, 5),
        status=TaskStatus.RETRYING,
        delay=taskhub_settings.DEFAULT_RETRY_SCHEDULE[3],
    ),
    "Exponential: base to the attempt": Case(
        **failure("test.fail_exponential", 1, 3), status=TaskStatus.RETRYING, delay=2
    ),
    "Exponential: capped": Case(
        **failure("test.fail_exponential", 2, 3), status=TaskStatus.RETRYING, delay=3
    ),
    "Linear: step times the attempt": Case(
        **failure("test.fail_linear", 1, 3), status=TaskStatus.RETRYING, delay=1.5
    ),
    "Linear: capped": Case(
        **failure("test.fail_linear", 2, 3), status=TaskStatus.RETRYING, delay=2
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_outcome_of_an_attempt(case: Case):
    attempt = attempt_of(
        case.name,
        case.attempt,
        case.max_attempts,
        result=case.result,
        cancel_seen=case.cancel_seen,
        spawned=case.spawned,
    )

    outcome = decide_outcome(attempt, case.exception)

    assert outcome.status == case.status
    assert (outcome.task_id, outcome.attempt) == (attempt.envelope["id"], case.attempt)
    assert case.error in outcome.error
    if case.status in (TaskStatus.COMPLETED, TaskStatus.BLOCKED):
        assert outcome.result == case.stored and not outcome.error
    if case.status == TaskStatus.BLOCKED:
        assert outcome.children == case.spawned
    if case.status == TaskStatus.FAILED:
        assert outcome.event_data["permanent"] is case.permanent
        assert outcome.retry_at is None
    if case.status == TaskStatus.RETRYING:
        assert (outcome.retry_at - outcome.finished_at).total_seconds() == case.delay
        assert outcome.event_data["delay"] == case.delay
    else:
        assert outcome.retry_at is None
    if case.exception is not None and case.status != TaskStatus.CANCELLED:
        # The traceback is kept for the operator.
        assert type(case.exception).__name__ in outcome.traceback


def test_exponential_jitter_spreads_delays_within_its_bounds():
    policy = Exponential(base=2, cap=100, jitter=0.25)
    delays = [policy.delay(3) for _ in range(200)]
    assert all(6 <= d <= 10 for d in delays)
    assert len(set(delays)) > 1  # spread, not one value


@pytest.mark.parametrize(
    "config", [[], [-1], {"kind": "fibonacci"}, {"kind": "schedule", "delays": []}]
)
def test_a_retry_policy_that_makes_no_sense_is_refused(config):
    with pytest.raises(ValueError):
        policy_from_config(config)


# -- the decision as the outcome writer records it --------------------------------------------
BOOM, FAILING = RuntimeError("boom"), "test.fail_schedule"  # three attempts
# task type, attempt, of, how it ended, cancel requested, row status, dead letter
WRITTEN = {
    "success": ("test.noop", 1, 5, None, False, "completed", False),
    "a failure with attempts left": (FAILING, 1, 3, BOOM, False, "retrying", False),
    "a failure on the last attempt": (FAILING, 3, 3, BOOM, False, "failed", True),
    "PermanentError": ("test.permanent", 1, 5, PermanentError("no"), False, "failed", True),
    "a timeout": ("test.slow_timeout", 1, 2, TimeLimitExceeded(), False, "retrying", False),
    "a failure after a cancel was requested": (FAILING, 1, 3, BOOM, True, "cancelled", False),
    "the last failure after a cancel request": (FAILING, 3, 3, BOOM, True, "cancelled", False),
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name, number, max_attempts, exception, cancel_requested, status, dead_letter",
    WRITTEN.values(),
    ids=WRITTEN.keys(),
)
def test_the_decided_outcome_as_written_to_the_task_row(
    name, number, max_attempts, exception, cancel_requested, status, dead_letter
):
    task = schedule(name, {}, max_attempts=max_attempts)
    Task.objects.filter(id=task.id).update(
        status="running", attempt=number, cancel_requested=cancel_requested
    )
    writer = OutcomeWriter("unit-decision")
    attempt = attempt_of(name, number, max_attempts, result="ok")
    attempt.envelope["id"] = attempt.ctx.task_id = str(task.id)
    attempt.start = writer.record_start(str(task.id), number)

    outcome = decide_outcome(attempt, exception)
    writer.record_outcome(outcome)
    assert writer.flush()

    task.refresh_from_db()
    assert (task.status, task.attempt) == (status, number)
    assert DeadLetter.objects.filter(task_id=task.id).exists() is dead_letter
    if status == "retrying":
        # Due again after the policy's delay; the next dispatch is the next attempt.
        assert task.scheduled_at == outcome.retry_at
        assert task.scheduled_at > timezone.now()
    if status == "completed":
        assert task.result == "ok"
