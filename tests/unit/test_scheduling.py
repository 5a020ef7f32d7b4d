"""Scheduling validates everything first: bad input gets a clear error and writes nothing."""

import datetime as dt

import pytest

from taskhub import InvalidTaskRequest, schedule, schedule_many
from taskhub.models import Task, TaskEvent

pytestmark = pytest.mark.django_db


def assert_nothing_written():
    assert Task.objects.count() == 0
    assert TaskEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "no.such.task", "payload": {}}, "unknown task 'no.such.task'"),
        ({"task": "test.sleep", "payload": {"seconds": "soon"}}, "payload.seconds"),
        ({"task": "test.sleep", "payload": {"seconds": 99}}, "payload.seconds"),
        ({"task": "test.noop", "payload": [1, 2]}, "payload must be a JSON object"),
        ({"task": "test.noop", "payload": {"when": dt.datetime.now()}}, "not JSON-serialisable"),
        ({"task": "test.noop", "payload": {"x": float("nan")}}, "not JSON-serialisable"),
        ({"task": "test.noop", "payload": {"blob": "x" * 300_000}}, "over the limit"),
        ({"task": "test.noop", "payload": {}, "priority": "urgent"}, "unknown priority"),
        ({"task": "test.noop", "payload": {}, "priority": 1000}, "out of range"),
        ({"task": "test.noop", "payload": {}, "delay": -1}, "delay must be"),
        ({"task": "test.noop", "payload": {}, "max_attempts": 0}, "max_attempts"),
        ({"task": "test.noop", "payload": {}, "dedup_key": ""}, "dedup_key"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error_and_nothing_is_stored(kwargs, message):
    task = kwargs.pop("task")
    payload = kwargs.pop("payload")

    with pytest.raises(InvalidTaskRequest, match=message.replace("(", r"\(")):
        schedule(task, payload, **kwargs)

    assert_nothing_written()


def test_a_bulk_schedule_with_one_bad_item_stores_nothing():
    payloads = [{"seconds": 0}] * 10 + [{"seconds": "x"}] + [{"seconds": 0}]

    with pytest.raises(InvalidTaskRequest, match="item 10"):
        schedule_many("test.sleep", payloads)

    assert_nothing_written()


def test_a_bulk_schedule_stores_every_task_with_a_created_event():
    rows = schedule_many("test.noop", [{"n": i} for i in range(2500)], priority="low")

    assert Task.objects.filter(status="pending", priority=-5).count() == 2500
    assert TaskEvent.objects.filter(kind="created").count() == 2500
    assert {r.payload["n"] for r in rows} == set(range(2500))
    assert Task.objects.get(id=rows[7].id).payload == {"n": 7}  # JSON as JSON, not a string
    assert Task.objects.filter(payload__n=7).count() == 1
    # Each created event belongs to its own row, and each returned row is the stored one.
    events = TaskEvent.objects.filter(kind="created")
    assert set(events.values_list("task_id", flat=True)) == {r.id for r in rows}
    fields = [f.attname for f in Task._meta.concrete_fields]
    for row in rows[::499]:
        stored = Task.objects.get(id=row.id)
        assert [getattr(row, f) for f in fields] == [getattr(stored, f) for f in fields]
    # They behave as saved rows: an update writes, it does not insert a second row.
    rows[0].correlation_id = "edited"
    rows[0].save(update_fields=["correlation_id"])
    assert Task.objects.get(id=rows[0].id).correlation_id == "edited"
    assert rows[1].payload is not rows[2].payload


def test_a_single_schedule_writes_the_row_and_its_event_together():
    task = schedule("test.noop", {"x": [1, 2]}, correlation_id="c-1")

    stored = Task.objects.get(id=task.id)
    assert (stored.payload, stored.correlation_id, stored.status) == (
        {"x": [1, 2]},
        "c-1",
        "pending",
    )
    event = TaskEvent.objects.get(task_id=task.id)
    assert event.kind == "created" and event.data["priority"] == 0


def test_named_and_numeric_priorities_are_accepted():
    assert schedule("test.noop", {}, priority="critical").priority == 10
    assert schedule("test.noop", {}, priority="deferred").priority == -10
    assert schedule("test.noop", {}, priority=42).priority == 42


def test_delay_sets_the_time_the_task_becomes_due():
    task = schedule("test.noop", {}, delay=30)

    assert 29 <= (task.scheduled_at - task.created_at).total_seconds() <= 31
