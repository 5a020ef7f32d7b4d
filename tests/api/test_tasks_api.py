"""/api/tasks: what a service or script sees when it schedules and steers tasks."""

import datetime as dt

import pytest
from django.utils import timezone

from taskhub.engine.enqueue import schedule
from taskhub.models import DeadLetter, EventKind, OperatorAction, Task, TaskEvent, TaskStatus

pytestmark = pytest.mark.django_db


def fail(task: Task) -> None:
    now = timezone.now()
    Task.objects.filter(id=task.id).update(
        status=TaskStatus.FAILED, attempt=1, completed_at=now, error="RuntimeError: boom"
    )
    DeadLetter.objects.create(
        task_id=task.id,
        task_name=task.name,
        queue=task.queue,
        error="RuntimeError: boom",
        attempts=1,
        created_at=now,
    )


def test_scheduling_a_task_returns_201_with_the_stored_task(operator):
    body = {
        "task": "taskhub.ping",
        "payload": {},
        "priority": "high",
        "delay": 30,
        "max_attempts": 2,
        "dedup_key": "once",
        "correlation_id": "c-1",
    }
    response = operator.post("/api/tasks", body, format="json")
    assert response.status_code == 201
    data = response.json()
    task = Task.objects.get(id=data["id"])
    assert (data["status"], data["priority"], data["max_attempts"]) == ("pending", 5, 2)
    assert task.correlation_id == "c-1" and task.dedup_key == "once"
    assert task.scheduled_at > timezone.now() + dt.timedelta(seconds=20)
    # the same dedup key again returns the same task instead of a second one
    again = operator.post("/api/tasks", body, format="json")
    assert again.json()["id"] == data["id"]


def test_the_list_is_newest_first_filtered_and_paged_by_cursor(viewer):
    for i in range(5):
        schedule("taskhub.ping", {}, correlation_id="batch", user_id=f"u{i % 2}")
    schedule("taskhub.ping", {}, correlation_id="other")
    page = viewer.get("/api/tasks?correlation_id=batch&limit=2").json()
    assert len(page["results"]) == 2
    seen = [t["id"] for t in page["results"]]
    while page["next"]:
        page = viewer.get(page["next"]).json()
        seen += [t["id"] for t in page["results"]]
    expected = Task.objects.filter(correlation_id="batch").order_by("-created_at")
    assert seen == [str(t.id) for t in expected]
    only_u1 = viewer.get("/api/tasks?correlation_id=batch&user_id=u1").json()["results"]
    assert len(only_u1) == 2


def test_the_list_filters_by_status_queue_task_and_creation_time(viewer):
    done = schedule("taskhub.ping", {})
    Task.objects.filter(id=done.id).update(status=TaskStatus.COMPLETED)
    schedule("http.request", {"url": "https://example.com"})
    statuses = viewer.get("/api/tasks?status=completed").json()["results"]
    assert [t["id"] for t in statuses] == [str(done.id)]
    by_name = viewer.get("/api/tasks?task=http.request&queue=default").json()["results"]
    assert [t["name"] for t in by_name] == ["http.request"]
    future = (timezone.now() + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert viewer.get(f"/api/tasks?created_after={future}").json()["results"] == []
    both = viewer.get("/api/tasks?status=completed,pending").json()["results"]
    assert len(both) == 2


def test_a_task_shows_its_events_logs_and_masks_secret_fields(viewer):
    task = schedule(
        "http.request",
        {"url": "https://example.com", "headers": {"Authorization": "Bearer s3cret"}},
    )
    data = viewer.get(f"/api/tasks/{task.id}").json()
    assert data["payload"]["headers"] == "***"
    assert "s3cret" not in str(viewer.get("/api/tasks").content)
    assert [e["kind"] for e in data["events"]] == ["created"]
    assert data["logs"] == []


def test_retry_and_cancel_move_the_task_and_are_audited(operator):
    task = schedule("taskhub.ping", {})
    fail(task)
    retried = operator.post(f"/api/tasks/{task.id}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    assert not DeadLetter.objects.filter(task_id=task.id).exists()
    cancelled = operator.post(f"/api/tasks/{task.id}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    kinds = list(TaskEvent.objects.filter(task_id=task.id).values_list("kind", flat=True))
    assert EventKind.REQUEUED in kinds and EventKind.CANCELLED in kinds
    audit = OperatorAction.objects.filter(target_id=str(task.id)).order_by("id")
    assert [(a.username, a.source, a.action) for a in audit] == [
        ("operator-user", "api", "task.retry"),
        ("operator-user", "api", "task.cancel"),
    ]


def test_a_transition_the_state_does_not_allow_is_409_and_not_audited(operator, admin):
    task = schedule("taskhub.ping", {})
    assert operator.post(f"/api/tasks/{task.id}/retry").status_code == 409
    assert admin.delete(f"/api/tasks/{task.id}").status_code == 409
    assert not OperatorAction.objects.exists()


def test_delete_removes_a_finished_task(admin):
    task = schedule("taskhub.ping", {})
    fail(task)
    assert admin.delete(f"/api/tasks/{task.id}").status_code == 204
    assert not Task.objects.filter(id=task.id).exists()
    assert OperatorAction.objects.get().action == "task.delete"


def test_bulk_schedules_every_item_in_one_go(operator):
    body = {
        "tasks": [
            {"task": "taskhub.ping", "correlation_id": "bulk"},
            {"task": "http.request", "payload": {"url": "https://example.com"}, "priority": "low"},
        ]
    }
    response = operator.post("/api/tasks/bulk", body, format="json")
    assert response.status_code == 201
    assert [t["name"] for t in response.json()] == ["taskhub.ping", "http.request"]
    assert Task.objects.count() == 2
    assert OperatorAction.objects.get().details == {"count": 2}


def test_creating_a_task_is_audited_with_its_id(operator):
    data = operator.post("/api/tasks", {"task": "taskhub.ping"}, format="json").json()
    action = OperatorAction.objects.get()
    assert (action.action, action.target_id, action.username) == (
        "task.create",
        data["id"],
        "operator-user",
    )
