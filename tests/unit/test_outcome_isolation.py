"""A batch the database refuses: the outcome writer against the real database (no worker).

The boundary (taskhub.safety.storable) makes handler values storable before they reach the writer;
these tests take it away to stand for a value it did not foresee, and check that such a record
is isolated instead of failing every later flush. A lone surrogate is refused by PostgreSQL
and by SQLite's driver alike.
"""

import uuid

import pytest
from django.db import InterfaceError, OperationalError, ProgrammingError, connection
from django.test import override_settings
from django.utils import timezone

from taskhub import schedule
from taskhub.engine import outcomes
from taskhub.engine.outcomes import Outcome, OutcomeWriter
from taskhub.models import Task, TaskLog

pytestmark = pytest.mark.django_db(transaction=True)

POISON = "refused \ud800 here"
# PostgreSQL refuses NUL too (in text and jsonb); SQLite stores it, so it poisons nothing there.
NUL_POISON = pytest.param(
    "refused \x00 here",
    marks=pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL refuses NUL"),
)


def running_task() -> Task:
    task = schedule("test.noop", {})
    Task.objects.filter(id=task.id).update(status="running", attempt=1)
    return task


def outcome(task: Task, status: str = "completed", **fields) -> Outcome:
    now = timezone.now()
    return Outcome(
        task_id=str(task.id),
        attempt=1,
        name=task.name,
        queue=task.queue,
        status=status,
        started_at=now,
        finished_at=now,
        **fields,
    )


@pytest.fixture
def no_boundary(monkeypatch):
    """Records reach the writer as the handler made them."""
    monkeypatch.setattr(outcomes, "storable_outcome", lambda o: o)
    monkeypatch.setattr(outcomes, "storable_text", lambda text: text)


@pytest.mark.parametrize("poison", [POISON, NUL_POISON])
def test_a_refused_record_is_isolated_and_the_rest_of_the_batch_is_written(no_boundary, poison):
    before, poisoned, after = running_task(), running_task(), running_task()
    writer = OutcomeWriter("unit-writer")
    writer.record_log(str(before.id), 1, "INFO", "before")
    writer.record_outcome(outcome(before, result="ok"))
    writer.record_log(str(poisoned.id), 1, "INFO", poison)
    writer.record_progress(str(poisoned.id), 1, 40)
    writer.record_outcome(outcome(poisoned, result={"body": poison}))
    writer.record_outcome(outcome(after, "failed", error="boom", event_data={"error": "boom"}))

    assert writer.flush() is True

    assert not writer._has_work()  # nothing left to fail the next flush
    done = Task.objects.get(id=before.id)
    assert (done.status, done.result) == ("completed", "ok")
    assert list(done.logs.values_list("message", flat=True)) == ["before"]
    failed = Task.objects.get(id=after.id)
    assert (failed.status, failed.error) == ("failed", "boom")
    refused = Task.objects.get(id=poisoned.id)
    assert refused.status == "failed" and refused.result is None
    assert refused.error.startswith("the database refused what this attempt recorded")
    assert refused.dead_letters.get().error == refused.error
    assert refused.events.get(kind="failed").data["error"] == refused.error
    [line] = refused.logs.all()
    assert line.level == "ERROR" and line.message.startswith("1 log lines were not stored")
    assert writer.health()["status"] == "ok"


def test_a_refused_retry_keeps_its_retry(no_boundary):
    task = running_task()
    writer = OutcomeWriter("unit-writer")
    retry_at = timezone.now()
    writer.record_outcome(
        outcome(task, "retrying", error=POISON, traceback=POISON, retry_at=retry_at)
    )

    assert writer.flush() is True

    task.refresh_from_db()
    assert task.status == "retrying" and task.scheduled_at == retry_at
    assert task.error.startswith("the database refused") and task.traceback == ""


def test_what_belongs_to_a_deleted_task_is_dropped_alone():
    kept, deleted = running_task(), running_task()
    writer = OutcomeWriter("unit-writer")
    writer.record_log(str(deleted.id), 1, "INFO", "from a task deleted meanwhile")
    writer.record_log(str(uuid.uuid4()), 1, "INFO", "from a task that never was")
    writer.record_log(str(kept.id), 1, "INFO", "kept")
    writer.record_outcome(outcome(kept, result="ok"))
    Task.objects.filter(id=deleted.id).delete()

    assert writer.flush() is True

    assert not writer._has_work()
    assert list(TaskLog.objects.values_list("message", flat=True)) == ["kept"]
    assert Task.objects.get(id=kept.id).status == "completed"


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("the database went away"),
        InterfaceError("the database went away"),
        # Not a refusal of one record: a column a deploy has not migrated yet, say.
        ProgrammingError("the database went away"),
    ],
)
def test_an_outage_keeps_the_whole_batch_and_the_writer_reports_it(monkeypatch, error):
    task = running_task()
    writer = OutcomeWriter("unit-writer")
    writer.record_log(str(task.id), 1, "INFO", "line")
    writer.record_outcome(outcome(task, result="ok"))
    write = writer._write

    def away(batch):
        raise error

    monkeypatch.setattr(writer, "_write", away)
    assert writer.flush() is False
    health = writer.health()
    assert health["failed_flushes"] == 1 and health["buffered"] == 2
    assert health["last_error"] == "the database went away"
    assert Task.objects.get(id=task.id).status == "running"  # not isolated: kept for later

    monkeypatch.setattr(writer, "_write", write)
    assert writer.flush() is True
    assert Task.objects.get(id=task.id).status == "completed"
    assert list(TaskLog.objects.values_list("message", flat=True)) == ["line"]
    assert writer.health() == {
        "status": "ok",
        "unflushed_for": 0.0,
        "buffered": 0,
        "failed_flushes": 0,
        "last_error": "",
    }


def test_a_writer_that_cannot_write_for_longer_than_the_lifeline_timeout_is_stuck(monkeypatch):
    task = running_task()
    writer = OutcomeWriter("unit-writer")
    writer.record_outcome(outcome(task, result="ok"))

    def away(batch):
        raise OperationalError("the database went away")

    monkeypatch.setattr(writer, "_write", away)
    writer.flush()

    with override_settings(TASKHUB={"LIFELINE_TIMEOUT": 0.0}):
        assert writer.health()["status"] == "stuck"
    with override_settings(TASKHUB={"LIFELINE_TIMEOUT": 60.0}):
        assert writer.health()["status"] == "ok"
