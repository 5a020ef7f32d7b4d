"""The established /api/task-queue/* API: exact paths and response shapes clients rely on."""

import datetime as dt

import pytest
from django.utils import timezone

from taskhub.builtins.queue_api import definition_for
from taskhub.engine.enqueue import schedule
from taskhub.models import OperatorAction, QueueState, Task, TaskStatus

pytestmark = pytest.mark.django_db

JOBS = [
    (
        "email",
        {"to": "a@example.com", "subject": "Hi", "template": "welcome", "context": {"name": "Ada"}},
        "email.send",
        "email",
    ),
    (
        "image-processing",
        {
            "url": "https://example.com/a.png",
            "outputFormat": "png",
            "transformations": [{"type": "resize", "options": {"width": 100}}],
        },
        "image.process",
        "image-processing",
    ),
    (
        "blockchain-event",
        {
            "contractAddress": "0x" + "ab" * 20,
            "eventName": "Transfer",
            "parameters": {"value": "1"},
            "networkId": 137,
        },
        "blockchain.handle_event",
        "blockchain-events",
    ),
    (
        "notification",
        {"userId": 42, "type": "info", "message": "hello"},
        "notifications.deliver",
        "notifications",
    ),
    (
        "analytics",
        {"event": "page_view", "userId": 42, "properties": {"path": "/"}},
        "analytics.track",
        "analytics",
    ),
]


@pytest.mark.parametrize("kind,body,name,queue", JOBS)
def test_each_job_endpoint_schedules_its_registered_task(operator, kind, body, name, queue):
    response = operator.post(
        f"/api/task-queue/{kind}", {**body, "priority": "high", "delay": 5000}, format="json"
    )
    assert response.status_code == 201
    data = response.json()
    assert set(data) == {"success", "jobId", "queueName", "timestamp"}
    assert data["success"] is True and data["queueName"] == queue
    task = Task.objects.get(id=data["jobId"])
    assert (task.name, task.queue, task.priority) == (name, queue, 5)
    assert task.payload == body  # priority and delay are options, not payload
    # delay is in milliseconds, as BullMQ's: 5000 is five seconds
    wait = task.scheduled_at - task.created_at
    assert dt.timedelta(seconds=4.9) < wait < dt.timedelta(seconds=5.1)


@pytest.mark.parametrize("kind,body,name,queue", JOBS)
def test_each_endpoint_is_backed_by_a_real_task_with_a_schema(kind, body, name, queue):
    definition = definition_for(kind)
    assert (definition.name, definition.queue) == (name, queue)
    assert definition.schema is not None
    definition.schema.model_validate(body)


def test_status_shows_the_job(viewer):
    task = schedule("email.send", JOBS[0][1])
    data = viewer.get(f"/api/task-queue/status/email/{task.id}").json()
    assert data["found"] is True
    job = data["job"]
    assert {"id", "status", "progress", "attempts"} <= set(job)
    assert (job["id"], job["status"], job["progress"], job["attempts"]) == (
        str(task.id),
        "pending",
        0,
        0,
    )
    # the same job looked up under another queue is not found
    assert viewer.get(f"/api/task-queue/status/default/{task.id}").json() == {"found": False}


def test_stats_lists_every_queue_in_the_known_shape(viewer):
    schedule("email.send", JOBS[0][1])
    schedule("email.send", JOBS[0][1], delay=600)
    data = viewer.get("/api/task-queue/stats").json()
    keys = {"queueName", "active", "waiting", "completed", "failed", "delayed", "paused"}
    assert all(set(row) == keys for row in data["stats"])
    email = viewer.get("/api/task-queue/stats?queueName=email").json()["stats"]
    assert email == [
        {
            "queueName": "email",
            "active": 0,
            "waiting": 1,
            "completed": 0,
            "failed": 0,
            "delayed": 1,
            "paused": False,
        }
    ]


def test_failed_lists_failed_jobs_newest_first_with_a_total(viewer):
    ids = []
    for _ in range(4):
        task = schedule("email.send", JOBS[0][1])
        Task.objects.filter(id=task.id).update(status=TaskStatus.FAILED, error="SMTPError: no")
        ids.append(str(task.id))
    data = viewer.get("/api/task-queue/email/failed?start=1&end=2").json()
    assert data["queueName"] == "email" and data["count"] == 4
    assert [j["id"] for j in data["jobs"]] == list(reversed(ids))[1:3]
    assert data["jobs"][0]["failedReason"] == "SMTPError: no"


def test_pause_resume_and_clear_act_and_answer_success(operator, admin):
    waiting = schedule("email.send", JOBS[0][1])
    paused = operator.post("/api/task-queue/email/pause").json()
    assert set(paused) == {"success", "message", "timestamp"} and paused["success"] is True
    assert QueueState.objects.get(name="email").paused
    operator.post("/api/task-queue/email/resume")
    assert not QueueState.objects.get(name="email").paused
    cleared = admin.post("/api/task-queue/email/clear").json()
    assert cleared["success"] is True and "1" in cleared["message"]
    waiting.refresh_from_db()
    assert waiting.status == TaskStatus.CANCELLED
    actions = list(OperatorAction.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["queue.pause", "queue.resume", "queue.clear"]


def test_retry_and_remove_a_failed_job(operator, admin):
    task = schedule("email.send", JOBS[0][1])
    Task.objects.filter(id=task.id).update(status=TaskStatus.FAILED, completed_at=timezone.now())
    retried = operator.post(f"/api/task-queue/email/retry/{task.id}").json()
    assert retried["success"] is True
    assert Task.objects.get(id=task.id).status == TaskStatus.PENDING
    # a job that is not failed can't be removed: 409 in the same envelope
    refused = admin.post(f"/api/task-queue/email/remove/{task.id}")
    assert refused.status_code == 409 and refused.json()["success"] is False
    Task.objects.filter(id=task.id).update(status=TaskStatus.FAILED)
    assert admin.post(f"/api/task-queue/email/remove/{task.id}").json()["success"] is True
    assert not Task.objects.filter(id=task.id).exists()
    # a job of another queue is not found under this one
    other = schedule("taskhub.ping", {})
    assert admin.post(f"/api/task-queue/email/remove/{other.id}").status_code == 404
