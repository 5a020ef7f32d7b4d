"""Immediate mode (taskhub.testing, docs/testing.md): a scheduled task runs in this process after
the transaction that scheduled it commits — validated, retried and recorded by the engine's own
code — with no worker, dispatcher or broker. Every test here runs against the real database."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from taskhub import InvalidTaskRequest, schedule, schedule_many
from taskhub.console.services import pause_queue, resume_queue
from taskhub.engine.context import TaskContext
from taskhub.models import DeadLetter, QueueState, Task, TaskEvent, TaskLog
from taskhub.testing import DrainLimitReached, drain, testing_mode, worker_id

from .tasks import Greeting, calls

pytestmark = pytest.mark.django_db(transaction=True)


def kinds(task) -> list[str]:
    return list(
        TaskEvent.objects.filter(task_id=task.id).order_by("id").values_list("kind", flat=True)
    )


def test_a_task_scheduled_in_a_transaction_runs_after_the_commit_not_before(taskhub_immediate):
    with transaction.atomic():
        task = schedule("testing.greet", {"to": "ada"}, correlation_id="signup-1", user_id=7)
        assert calls["testing.greet"] == []  # not inside the transaction
        assert Task.objects.get(id=task.id).status == "pending"

    assert len(calls["testing.greet"]) == 1
    task.refresh_from_db()
    assert task.status == "completed"
    assert task.result == {"greeted": "ada", "excited": False}
    assert (task.attempt, task.progress, task.error) == (1, 100, "")
    assert task.worker_id == worker_id()
    assert task.started_at is not None and task.completed_at >= task.started_at
    assert kinds(task) == ["created", "queued", "started", "progress", "completed"]


def test_a_task_scheduled_in_a_transaction_that_rolls_back_never_runs(taskhub_immediate):
    with pytest.raises(RuntimeError, match="rolled back"), transaction.atomic():
        schedule("testing.greet", {"to": "ada"})
        raise RuntimeError("rolled back")

    assert calls["testing.greet"] == []
    assert not Task.objects.exists()
    # Nothing was left behind to run later either.
    assert len(drain()) == 0
    assert calls["testing.greet"] == []


def test_a_savepoint_that_rolls_back_drops_only_its_own_task(taskhub_immediate):
    with transaction.atomic():
        kept = schedule("testing.greet", {"to": "kept"})
        try:
            with transaction.atomic():
                schedule("testing.greet", {"to": "dropped"})
                raise ValueError("inner")
        except ValueError:
            pass

    assert [call[0].to for call in calls["testing.greet"]] == ["kept"]
    assert list(Task.objects.values_list("id", flat=True)) == [kept.id]


def test_outside_a_transaction_the_task_runs_before_schedule_returns(taskhub_immediate):
    task = schedule("testing.greet", {"to": "ada"})

    assert len(calls["testing.greet"]) == 1
    assert task.status == "pending"  # the row schedule() built before the run
    task.refresh_from_db()
    assert task.status == "completed"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"excited": True}, "to"),  # a required field missing
        ({"to": "ada", "excited": "very"}, "excited"),  # a wrong type
        ({"to": "a\x00b"}, "payload"),  # a value the database cannot store
    ],
)
def test_an_invalid_payload_is_refused_exactly_as_in_production(payload, message):
    refusals = {}
    for mode in ("", "immediate"):
        with testing_mode(mode), pytest.raises(InvalidTaskRequest) as refused:
            schedule("testing.greet", payload)
        refusals[mode] = (str(refused.value), refused.value.field, refused.value.errors)

    assert refusals["immediate"] == refusals[""]
    assert message in refusals[""][0] or message == refusals[""][1]
    assert not Task.objects.exists()
    assert calls["testing.greet"] == []


def test_an_unknown_task_and_bad_options_are_refused_with_nothing_written(taskhub_immediate):
    with pytest.raises(InvalidTaskRequest, match="unknown task"):
        schedule("testing.nope", {})
    with pytest.raises(InvalidTaskRequest, match="max_attempts"):
        schedule("testing.greet", {"to": "ada"}, max_attempts=0)
    with pytest.raises(InvalidTaskRequest, match="item 1"):
        schedule_many("testing.greet", [{"to": "a"}, {"to": 3}])
    assert not Task.objects.exists()
    assert calls["testing.greet"] == []


def test_the_handler_gets_its_validated_payload_and_a_real_context(taskhub_immediate):
    task = schedule("testing.greet", {"to": "ada"}, correlation_id="signup-1", user_id=7)

    ((payload, attempt, ctx),) = calls["testing.greet"]
    assert payload == Greeting(to="ada", excited=False)
    assert isinstance(ctx, TaskContext)
    assert (ctx.task_id, ctx.name, ctx.queue) == (str(task.id), "testing.greet", "testing")
    assert (ctx.attempt, ctx.max_attempts) == (1, 3)
    assert (ctx.correlation_id, ctx.user_id) == ("signup-1", "7")
    assert ctx.idempotency_key == str(task.id)
    assert ctx.cancelled is False
    # What the handler logged and reported is written as a worker writes it.
    log = TaskLog.objects.get(task_id=task.id)
    assert (log.level, log.message, log.attempt) == ("INFO", "greeting ada", 1)
    progress = TaskEvent.objects.get(task_id=task.id, kind="progress")
    assert progress.data == {"progress": 40}


def test_a_failing_task_is_left_retrying_until_time_passes_then_fails_with_a_dead_letter(
    taskhub_immediate,
):
    before = timezone.now()
    task = schedule("testing.always_fails", {"order": 42})

    # One attempt ran; the retry waits for the policy's 30 s, as it would in production.
    assert [call[1] for call in calls["testing.always_fails"]] == [1]
    task.refresh_from_db()
    assert (task.status, task.attempt) == ("retrying", 1)
    assert task.error == "RuntimeError: boom on attempt 1"
    assert "Traceback" in task.traceback
    assert task.scheduled_at >= before + dt.timedelta(seconds=30)
    assert kinds(task) == ["created", "queued", "started", "retrying"]
    retrying = TaskEvent.objects.get(task_id=task.id, kind="retrying")
    assert retrying.data["delay"] == 30
    assert not DeadLetter.objects.exists()

    # Time passes for the queue's rows. (Only its queue: this project's operator alert about
    # the dead letter reads the wall clock, which does not move, and would wait forever.)
    drained = drain("testing", include_delayed=True)

    assert drained.counts == {"retrying": 1, "failed": 1}
    assert [call[1] for call in calls["testing.always_fails"]] == [1, 2, 3]
    task.refresh_from_db()
    assert (task.status, task.attempt) == ("failed", 3)
    assert task.error == "RuntimeError: boom on attempt 3"
    assert kinds(task) == [
        "created",
        *["queued", "started", "retrying"] * 2,
        *["queued", "started", "failed", "dead_lettered"],
    ]
    delays = TaskEvent.objects.filter(task_id=task.id, kind="retrying").order_by("id")
    assert [e.data["delay"] for e in delays] == [30, 120]  # the task's own policy
    dead = DeadLetter.objects.get(task_id=task.id)
    assert (dead.task_name, dead.attempts, dead.payload) == (
        "testing.always_fails",
        3,
        {"order": 42},
    )
    assert dead.error == "RuntimeError: boom on attempt 3"


def test_a_retry_that_is_due_at_once_runs_in_the_same_commit(taskhub_immediate):
    task = schedule("testing.flaky", {"fail_times": 2})

    assert [call[1] for call in calls["testing.flaky"]] == [1, 2, 3]
    task.refresh_from_db()
    assert (task.status, task.attempt, task.result) == ("completed", 3, {"succeeded_on": 3})
    assert kinds(task).count("retrying") == 2


def test_a_permanent_error_fails_at_once_with_a_dead_letter(taskhub_immediate):
    task = schedule("testing.permanent", {"to": "x@example.invalid"})

    assert len(calls["testing.permanent"]) == 1
    task.refresh_from_db()
    assert (task.status, task.attempt) == ("failed", 1)
    assert task.error == "PermanentError: address cannot exist"
    failed = TaskEvent.objects.get(task_id=task.id, kind="failed")
    assert failed.data == {"error": task.error, "permanent": True}
    assert DeadLetter.objects.filter(task_id=task.id, attempts=1).exists()


def test_a_task_a_handler_schedules_runs_too_even_in_another_queue(taskhub_immediate):
    with transaction.atomic():
        first = schedule("testing.chain", {"to": "bob"}, correlation_id="c-9")

    first.refresh_from_db()
    second = Task.objects.get(name="testing.other")
    assert (first.status, second.status) == ("completed", "completed")
    assert second.result == "hello bob"
    assert second.correlation_id == "c-9"
    assert second.queue == "testing-other"


def test_a_delayed_task_waits_until_a_drain_lets_time_pass(taskhub_immediate):
    task = schedule("testing.greet", {"to": "later"}, delay=3600)

    assert calls["testing.greet"] == []
    assert Task.objects.get(id=task.id).status == "pending"
    assert len(drain()) == 0  # not due

    assert drain(include_delayed=True).counts == {"completed": 1}
    assert Task.objects.get(id=task.id).status == "completed"


def test_tasks_run_highest_priority_first(taskhub_manual):
    for name, priority in (("low", "low"), ("critical", "critical"), ("normal", None)):
        schedule("testing.greet", {"to": name}, priority=priority)

    drain()

    assert [call[0].to for call in calls["testing.greet"]] == ["critical", "normal", "low"]


def test_with_priorities_off_a_drain_runs_tasks_in_the_order_they_became_due(
    taskhub_manual, settings
):
    settings.TASKHUB = {**settings.TASKHUB, "ENABLE_PRIORITY": False}
    for name, priority in (("low", "low"), ("critical", "critical"), ("normal", None)):
        schedule("testing.greet", {"to": name}, priority=priority)

    drain()

    assert [call[0].to for call in calls["testing.greet"]] == ["low", "critical", "normal"]


def test_a_paused_queue_starts_nothing_until_it_is_resumed(taskhub_immediate):
    pause_queue("testing")
    task = schedule("testing.greet", {"to": "ada"})

    assert calls["testing.greet"] == []
    assert len(drain()) == 0
    assert Task.objects.get(id=task.id).status == "pending"

    resume_queue("testing")  # the resume wakes the queue, which runs it

    assert QueueState.objects.get(name="testing").paused is False
    assert Task.objects.get(id=task.id).status == "completed"


def test_a_task_that_keeps_scheduling_itself_stops_at_the_drain_limit(taskhub_manual):
    schedule("testing.forever", {"n": 0})

    with pytest.raises(DrainLimitReached, match="5 attempts"):
        drain(limit=5)
    assert Task.objects.filter(status="completed").count() == 5
    assert Task.objects.filter(status="pending").count() == 1  # the next one, left as it was


def test_schedule_many_runs_every_task_after_its_commit(taskhub_immediate):
    with transaction.atomic():
        rows = schedule_many("testing.greet", [{"to": f"user{i}"} for i in range(60)])
        assert calls["testing.greet"] == []

    assert len(calls["testing.greet"]) == 60
    assert Task.objects.filter(id__in=[r.id for r in rows], status="completed").count() == 60


def test_nothing_is_sent_to_a_broker(taskhub_immediate, monkeypatch):
    import dramatiq

    from taskhub.engine import broker

    def refuse(*args, **kwargs):
        raise AssertionError("a message or a wake-up left the process")

    monkeypatch.setattr(broker, "_send_wake", refuse)
    monkeypatch.setattr(broker._waker, "wake", refuse)
    for method in ("enqueue", "enqueue_many"):
        monkeypatch.setattr(dramatiq.get_broker(), method, refuse, raising=False)
    task = schedule("testing.chain", {"to": "bob"})

    task.refresh_from_db()
    assert task.status == "completed"
    assert Task.objects.get(name="testing.other").status == "completed"


def test_a_django_tasks_enqueue_runs_after_the_commit_too(taskhub_immediate):
    from .djtasks import add

    with transaction.atomic():
        result = add.enqueue(2, 3)
        assert Task.objects.get(id=result.id).status == "pending"

    result.refresh()
    assert result.status == "SUCCESSFUL"
    assert result.return_value == 5
