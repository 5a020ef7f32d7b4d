"""The task type through the API: every task shows the type its task declares, ``?type=``
filters by it (an unknown one is a 400), the metrics count by it, and failure analysis names the
users each failure affected."""

import pytest
from django.utils import timezone

from taskhub.console import analytics
from taskhub.definitions.task_types import TaskType
from taskhub.engine.enqueue import schedule
from taskhub.models import Task, TaskStatus

pytestmark = pytest.mark.django_db


def failed(name: str, *, user: str = "", error: str = "RuntimeError: provider down") -> Task:
    task = schedule(name, {}, user_id=user or None)
    Task.objects.filter(id=task.id).update(
        status=TaskStatus.FAILED, attempt=1, error=error, completed_at=timezone.now()
    )
    return task


def test_a_scheduled_task_shows_the_type_its_task_declares(operator):
    typed = operator.post("/api/tasks", {"task": "test.typed.payment"}, format="json")
    untyped = operator.post("/api/tasks", {"task": "taskhub.ping"}, format="json")

    assert typed.status_code == untyped.status_code == 201
    assert typed.json()["type"] == "payment_processing"
    assert untyped.json()["type"] == "other"
    detail = operator.get(f"/api/tasks/{typed.json()['id']}").json()
    assert detail["type"] == "payment_processing"
    assert Task.objects.get(id=typed.json()["id"]).task_type == "payment_processing"


def test_the_list_filters_by_type(viewer):
    payments = {str(schedule("test.typed.payment", {}).id) for _ in range(3)}
    kyc = str(schedule("test.typed.kyc", {}).id)
    ping = str(schedule("taskhub.ping", {}).id)

    def ids(query: str) -> set[str]:
        response = viewer.get(f"/api/tasks?{query}")
        assert response.status_code == 200, response.content
        return {t["id"] for t in response.json()["results"]}

    assert ids("type=payment_processing") == payments
    assert ids("type=kyc_verification") == {kyc}
    assert ids("type=other") == {ping}
    assert ids("type=data_sync") == set()
    assert ids("type=payment_processing&queue=default&limit=2") <= payments
    assert len(ids("")) == 5


@pytest.mark.parametrize("value", ["payments", "PAYMENT_PROCESSING", "payment_processing "])
def test_an_unknown_type_in_the_filter_is_a_400_naming_the_field(viewer, value):
    schedule("test.typed.payment", {})

    response = viewer.get("/api/tasks", {"type": value})

    assert response.status_code == 400
    assert "type" in response.json()["errors"]


def test_metrics_count_tasks_by_their_type_listing_every_type(viewer):
    for _ in range(2):
        schedule("test.typed.payment", {})
    schedule("test.typed.kyc", {})
    schedule("taskhub.ping", {})

    by_type = viewer.get("/api/metrics").json()["tasksByType"]

    assert by_type == {
        "payment_processing": 2,
        "blockchain_transaction": 0,
        "kyc_verification": 1,
        "notification_delivery": 0,
        "data_sync": 0,
        "other": 1,
    }
    assert set(by_type) == set(TaskType.values)


def test_failures_list_the_distinct_users_affected_beside_their_count(viewer):
    for user in ["u1", "u2", "u1", "", "u3"]:  # newest last; one failure without a user
        failed("test.typed.payment", user=user)
    failed("taskhub.ping", user="u9")

    data = viewer.get("/api/failures").json()

    assert data["affectedUsersLimit"] == analytics.AFFECTED_USERS_LIMIT
    top = data["failures"][0]
    assert (top["taskType"], top["taskName"], top["frequency"]) == (
        "payment_processing",
        "test.typed.payment",
        5,
    )
    # Distinct, the most recently affected first.
    assert top["affectedUsers"] == ["u3", "u1", "u2"]
    assert top["affectedUsersCount"] == 3
    other = data["failures"][1]
    assert (other["taskType"], other["affectedUsers"]) == ("other", ["u9"])


def test_the_affected_users_listed_stop_at_the_limit_the_response_states(viewer, monkeypatch):
    monkeypatch.setattr(analytics, "AFFECTED_USERS_LIMIT", 2)
    for user in ["a", "b", "c", "d"]:
        failed("test.typed.kyc", user=user)

    data = viewer.get("/api/failures").json()

    (group,) = data["failures"]
    assert data["affectedUsersLimit"] == 2
    assert group["affectedUsers"] == ["d", "c"]
    assert group["affectedUsersCount"] == 4
