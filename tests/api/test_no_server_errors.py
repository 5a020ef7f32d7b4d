"""Inputs that once answered 500: each must be a 4xx that names the problem and writes nothing.

The clients here do not re-raise server errors, so a 500 shows as a status code, the way a real
client would see it.
"""

import pytest
from django.utils import timezone

from kyc.models import KycCase
from taskhub.models import OperatorAction, Task
from taskhub.workflows.models import WorkflowDefinition

pytestmark = pytest.mark.django_db

PING = {"type": "taskhub.ping"}


@pytest.fixture
def nothing_written():
    tables = (Task, OperatorAction, KycCase, WorkflowDefinition)
    before = [model.objects.count() for model in tables]
    yield
    assert [model.objects.count() for model in tables] == before, "a refused request wrote rows"


@pytest.fixture
def client_of(as_role):
    def client(role):
        api = as_role(role)
        api.raise_request_exception = False  # see the 500 a client would see
        return api

    return client


@pytest.mark.parametrize("body", [[1, 2], ["user_id"], "text", 7, None])
def test_a_kyc_document_body_that_is_not_an_object_is_400(client_of, nothing_written, body):
    response = client_of("operator").post("/api/kyc/documents", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]


@pytest.mark.parametrize(
    "url,body",
    [
        (
            "/api/task-queue/image-processing",
            {"url": "https://x.org/a.png", "transformations": [], "a\u0000b": 1},
        ),
        ("/api/task-queue/notification", {"userId": "u1", "type": "info", "message": "a\u0000"}),
        ("/api/tasks", {"task": "taskhub.ping", "payload": {"k\u0000": "v"}}),
        ("/api/tasks", {"task": "taskhub.ping", "payload": {"k": ["v\u0000"]}}),
        ("/api/workflows", {"definition": "x", "input": {"\u0000": 1}}),
    ],
)
def test_a_nul_character_in_a_json_key_or_value_is_400(client_of, nothing_written, url, body):
    response = client_of("admin").post(url, body, format="json")
    assert response.status_code == 400, response.content
    assert "NUL" in response.json()["error"]


@pytest.mark.parametrize(
    "url",
    [
        "/api/schedules/a%00b",
        "/api/kyc/users/a%00b",
        "/api/tasks?queue=a%00b",
        "/api/kyc/cases?user_id=a%00b",
        "/api/payments?user_id=%00",
        "/api/notifications?type=%00",
        "/api/workflow-definitions?name=%00",
    ],
)
def test_a_nul_character_in_the_url_is_400(client_of, url):
    response = client_of("admin").get(url)
    assert response.status_code == 400, response.content
    assert "NUL" in response.json()["error"]


def test_a_multipart_task_request_is_415(client_of, nothing_written):
    response = client_of("operator").post(
        "/api/tasks", {"task": "taskhub.ping", "payload": "{}"}, format="multipart"
    )
    assert response.status_code == 415, response.content
    assert response.json()["error"]


@pytest.mark.parametrize(
    "field,value",
    [
        ("compensation", {"type": "taskhub.ping"}),
        ("compensation", ["taskhub.ping"]),
        ("priority", {"x": 1}),
        ("maxAttempts", "3"),
        ("maxAttempts", 0),
        ("timeout", "slow"),
        ("allowFailure", "no"),
        ("compensateFailed", 1),
    ],
)
def test_a_stored_definition_with_a_wrongly_typed_step_field_is_400(
    client_of, nothing_written, field, value
):
    spec = {"initialTask": PING, "transitions": {"b": {**PING, "after": "initial", field: value}}}
    response = client_of("operator").post(
        "/api/workflow-definitions", {"name": "orders", "spec": spec}, format="json"
    )
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]


@pytest.mark.parametrize("to", [3600.0, [1, 2], {"a": "b@example.com"}, True])
def test_an_email_job_with_an_address_that_is_not_text_is_400(client_of, nothing_written, to):
    body = {"to": to, "subject": "Hi", "template": "welcome"}
    response = client_of("operator").post("/api/task-queue/email", body, format="json")
    assert response.status_code == 400, response.content
    assert "to" in response.json()["errors"], response.json()


def test_starting_a_stored_definition_whose_compensation_is_an_object_is_400(client_of):
    """A row written before the check existed (or by hand): starting it is refused, not a 500."""
    spec = {"initialTask": {**PING, "compensation": {"type": "taskhub.ping"}}}
    now = timezone.now()
    WorkflowDefinition.objects.create(
        name="legacy", version=1, spec=spec, created_at=now, updated_at=now
    )

    response = client_of("operator").post("/api/workflows", {"definition": "legacy"}, format="json")

    assert response.status_code == 400, response.content
    assert "compensation" in response.json()["error"]
    assert not Task.objects.exists()


@pytest.mark.parametrize("interval", [1.95e89, 1e15, 10 * 366 * 86400 + 1])
def test_a_schedule_interval_beyond_any_calendar_is_400(client_of, interval):
    from taskhub.scheduler.schedules import create_schedule

    create_schedule("hourly", "taskhub.ping", interval=3600)
    api = client_of("admin")

    changed = api.patch("/api/schedules/hourly", {"interval": interval}, format="json")
    created = api.post(
        "/api/schedules",
        {"name": "far", "task": "taskhub.ping", "interval": interval},
        format="json",
    )

    assert (changed.status_code, created.status_code) == (400, 400), (
        changed.content,
        created.content,
    )
    assert "interval" in changed.json()["errors"] and "interval" in created.json()["errors"]
    assert api.get("/api/schedules/hourly").json()["interval"] == 3600


def test_the_scheduler_refuses_an_interval_beyond_any_calendar():
    from taskhub.scheduler.cron import InvalidSchedule, ScheduleSpec, build_trigger

    with pytest.raises(InvalidSchedule, match="interval"):
        build_trigger(ScheduleSpec(interval=1e15))
