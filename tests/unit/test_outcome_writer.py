"""The worker's outcome writer against the real database (no worker process)."""

import uuid

import pytest
from django.utils import timezone

from taskhub import schedule
from taskhub.engine.outcomes import Outcome, OutcomeWriter
from taskhub.models import Task, TaskLog

pytestmark = pytest.mark.django_db(transaction=True)


def test_logs_of_a_deleted_task_do_not_stop_the_writer_for_good():
    task = schedule("test.noop", {})
    Task.objects.filter(id=task.id).update(status="running", attempt=1)
    writer = OutcomeWriter("unit-writer")
    gone = uuid.uuid4()  # a task deleted while this worker still held its log line
    writer.record_log(str(gone), 1, "INFO", "from a task that no longer exists")
    writer.record_log(str(task.id), 1, "INFO", "kept")
    now = timezone.now()
    writer.record_outcome(
        Outcome(
            task_id=str(task.id),
            attempt=1,
            name=task.name,
            queue=task.queue,
            status="completed",
            started_at=now,
            finished_at=now,
            result="ok",
        )
    )

    flushed = [writer.flush() for _ in range(3)]

    assert True in flushed  # it recovers instead of failing every flush from now on
    task.refresh_from_db()
    assert (task.status, task.result) == ("completed", "ok")
    assert list(TaskLog.objects.values_list("message", flat=True)) == ["kept"]


def test_a_late_outcome_of_a_handed_back_attempt_never_lands_on_the_next_attempt():
    """A worker shutting down hands back an attempt whose thread still runs; the task is sent
    again. The thread's outcome, if it ever comes, belongs to the old attempt number."""
    from taskhub.engine.dispatcher import claim_ready_tasks

    task = schedule("test.noop", {}, max_attempts=2)
    Task.objects.filter(id=task.id).update(status="running", attempt=1)
    writer = OutcomeWriter("shutting-down")
    started = writer.record_start(str(task.id), 1)
    assert writer.hand_back_unfinished("worker shut down") == [(str(task.id), 1)]
    assert writer.flush()
    task.refresh_from_db()
    # Pending again, its attempt number kept and not charged: the limit moved up with it.
    assert (task.status, task.attempt, task.max_attempts) == ("pending", 1, 3)

    [again] = claim_ready_tasks(task.queue, 10, timezone.now())
    assert again.envelope["attempt"] == 2 and again.envelope["max_attempts"] == 3
    now = timezone.now()
    writer.record_outcome(
        Outcome(
            task_id=str(task.id),
            attempt=1,
            name=task.name,
            queue=task.queue,
            status="completed",
            started_at=started.started_at,
            finished_at=now,
            result="late",
            start=started,
        )
    )
    assert writer.flush()

    task.refresh_from_db()
    assert (task.status, task.attempt, task.result) == ("queued", 2, None)
