"""POST /api/tasks/actions/<retry|cancel|delete>: every task the list's filter matches, counted
first, by role, audited once; bad input or a changed count changes nothing."""

import pytest
from django.db import connection, connections

from taskhub.console import bulk
from taskhub.engine.enqueue import schedule
from taskhub.models import OperatorAction, Task, TaskStatus
from tests.api.role_matrix import assert_answers_by_role, by_role
from tests.support import statuses, task_in

pytestmark = pytest.mark.django_db


def post(client, action: str, body: dict):
    return client.post(f"/api/tasks/actions/{action}", body, format="json")


def test_retry_by_filter_acts_on_the_matching_failed_tasks_and_reports_the_counts(operator):
    for _ in range(3):
        task_in("failed", correlation_id="import-7")
    task_in("completed", correlation_id="import-7")
    other = task_in("failed", correlation_id="import-8")

    response = post(operator, "retry", {"filter": {"correlation_id": "import-7"}})

    assert response.status_code == 200
    assert response.json() == {
        "matched": 4,
        "eligible": 3,
        "acted": 3,
        "skipped": 1,
        "dry_run": False,
    }
    assert Task.objects.filter(correlation_id="import-7", status="pending").count() == 3
    assert Task.objects.get(id=other.id).status == "failed"
    audit = OperatorAction.objects.get()
    assert (audit.username, audit.source, audit.action) == (
        "operator-user",
        "api",
        "task.bulk_retry",
    )
    assert audit.details["filter"] == {"correlation_id": "import-7"}
    assert (audit.details["matched"], audit.details["acted"]) == (4, 3)


def test_the_filter_takes_the_list_query_keys_status_as_a_list_or_comma_separated(operator):
    task_in("failed", correlation_id="a")
    task_in("cancelled", correlation_id="a")
    task_in("completed", correlation_id="a")
    for status in (["failed", "cancelled"], "failed,cancelled"):
        body = {"filter": {"status": status, "task": "taskhub.ping"}, "dry_run": True}
        assert post(operator, "retry", body).json()["matched"] == 2


def test_a_dry_run_counts_and_changes_nothing(admin):
    task_in("failed")
    task_in("completed")
    schedule("taskhub.ping", {})

    response = post(admin, "delete", {"filter": {"queue": "default"}, "dry_run": True})

    assert response.json() == {
        "matched": 3,
        "eligible": 2,
        "acted": 0,
        "skipped": 0,
        "dry_run": True,
    }
    assert Task.objects.count() == 3
    assert not OperatorAction.objects.exists()


def test_an_expected_count_that_differs_is_409_with_the_count_and_nothing_changes(operator):
    for _ in range(3):
        task_in("failed")
    body = {"filter": {"status": ["failed"]}, "expected_count": 2}

    refused = post(operator, "retry", body)

    assert refused.status_code == 409
    assert refused.json()["matched"] == 3 and refused.json()["expected_count"] == 2
    assert "3" in refused.json()["error"]
    assert statuses() == ["failed"] * 3
    assert not OperatorAction.objects.exists()
    # a dry run is held to it too, and the count it gives lets the action through
    assert post(operator, "retry", {**body, "dry_run": True}).status_code == 409
    assert post(operator, "retry", {**body, "expected_count": 3}).json()["acted"] == 3


def test_an_empty_filter_is_refused_unless_all_is_said(admin):
    task_in("completed")
    for body in ({}, {"filter": {}}, {"all": False}):
        refused = post(admin, "delete", body)
        assert refused.status_code == 400, body
        assert "all" in refused.json()["error"]
    assert Task.objects.count() == 1

    response = post(admin, "delete", {"filter": {}, "all": True})

    assert response.json()["acted"] == 1 and not Task.objects.exists()
    assert OperatorAction.objects.get().details["filter"] == {"all": True}


@pytest.mark.parametrize(
    "body",
    [
        {"filter": {"stauts": "failed"}},  # a misspelt key must not widen the action
        {"filter": {"status": ["failed", "exploded"]}},
        {"filter": {"created_after": "yesterday"}},
        {"filter": {"queue": "default", "cursor": "x"}},  # paging is not a filter
        {"filter": "status=failed"},
        {"filter": {"queue": "default"}, "expected_count": -1},
        {"filter": {"queue": "default"}, "expectd_count": 3},
        {"filter": {"queue": "default"}, "dry_run": "perhaps"},
    ],
)
def test_a_bad_body_is_400_and_changes_nothing(operator, body):
    task_in("failed")

    response = post(operator, "retry", body)

    assert response.status_code == 400, response.content
    assert response.json()["error"]
    assert statuses() == ["failed"] and not OperatorAction.objects.exists()


def test_cancel_by_filter_cancels_waiting_tasks_and_leaves_finished_ones(operator):
    waiting = [schedule("taskhub.ping", {}, delay=600) for _ in range(2)]
    task_in("completed")

    response = post(operator, "cancel", {"filter": {"queue": "default"}})

    assert response.json()["acted"] == 2 and response.json()["skipped"] == 1
    assert {Task.objects.get(id=t.id).status for t in waiting} == {TaskStatus.CANCELLED}


def test_delete_by_filter_never_deletes_a_live_task(admin):
    live = [schedule("taskhub.ping", {}), task_in("running"), task_in("queued")]
    task_in("failed")

    response = post(admin, "delete", {"filter": {"task": "taskhub.ping"}})

    assert response.json()["acted"] == 1
    assert set(Task.objects.values_list("id", flat=True)) == {t.id for t in live}


def _failed_filter() -> dict:
    task_in("failed", correlation_id="roles")
    return {"filter": {"correlation_id": "roles"}}


@by_role(
    [
        ("post", lambda: "/api/tasks/actions/retry", _failed_filter, "operator"),
        ("post", lambda: "/api/tasks/actions/cancel", _failed_filter, "operator"),
        ("post", lambda: "/api/tasks/actions/delete", _failed_filter, "admin"),
    ]
)
def test_retry_and_cancel_need_an_operator_delete_an_admin(as_role, method, url, body, least, role):
    response = getattr(as_role(role), method)(url(), body(), format="json")

    assert_answers_by_role(response, role, least)
    if response.status_code != 200:
        assert Task.objects.get().status == "failed" and not OperatorAction.objects.exists()


def test_the_actions_are_in_the_openapi_schema_with_their_409(viewer):
    paths = viewer.get("/api/schema/?format=json").json()["paths"]
    for action in ("retry", "cancel", "delete"):
        operation = paths[f"/api/tasks/actions/{action}"]["post"]
        assert {"200", "400", "403", "409"} <= set(operation["responses"])


@pytest.mark.django_db(transaction=True)
def test_the_batches_commit_on_their_own_even_with_atomic_requests(operator, monkeypatch):
    # A project with ATOMIC_REQUESTS would otherwise make the whole action one transaction.
    monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)
    inside_a_transaction = []
    real_run = bulk.run

    def spy(*args, **kwargs):
        inside_a_transaction.append(connection.in_atomic_block)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(bulk, "run", spy)
    task_in("failed")

    assert post(operator, "retry", {"filter": {"status": ["failed"]}}).json()["acted"] == 1
    assert inside_a_transaction == [False]
