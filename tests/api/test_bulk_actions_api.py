"""POST /api/tasks/actions/<retry|cancel|delete>: every task the list's filter matches, counted
first, by role, audited once; bad input or a changed count changes nothing."""

import pytest
from django.db import connection, connections
from django.utils.dateparse import parse_datetime

from taskhub.conf import taskhub_settings
from taskhub.console import bulk
from taskhub.engine.enqueue import schedule
from taskhub.models import OperatorAction, Task, TaskStatus
from tests.api.role_matrix import assert_answers_by_role, by_role
from tests.support import ROOT, override_taskhub, statuses, task_in

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


# -- above BULK_ACTION_INLINE_MAX: the action as a taskhub.bulk_action task -----------------------


@pytest.fixture
def inline_max_2():
    """At most 2 eligible tasks are acted on inside the request; more go to a task."""
    with override_taskhub(BULK_ACTION_INLINE_MAX=2):
        yield


def bulk_jobs():
    return Task.objects.filter(name="taskhub.bulk_action")


def test_the_threshold_is_a_documented_setting():
    assert taskhub_settings.BULK_ACTION_INLINE_MAX == 5000
    assert "`BULK_ACTION_INLINE_MAX` | `5000`" in (ROOT / "docs" / "settings.md").read_text()


def test_above_the_threshold_the_action_is_scheduled_as_one_task_and_answered_202(
    operator, inline_max_2, taskhub_manual
):
    failed = [task_in("failed", correlation_id="big") for _ in range(3)]
    task_in("completed", correlation_id="big")
    body = {"filter": {"correlation_id": "big", "status": "failed,completed"}, "expected_count": 4}

    response = post(operator, "retry", body)

    assert response.status_code == 202, response.content
    job = bulk_jobs().get()
    assert response.json() == {
        "matched": 4,
        "eligible": 3,
        "task_id": str(job.id),
        "status_url": f"http://testserver/api/tasks/{job.id}",
    }
    assert (job.status, job.max_attempts, job.queue) == ("pending", 1, "default")
    payload = job.payload
    assert payload["action"] == "retry" and payload["source"] == "api"
    assert payload["filter"] == {"correlation_id": "big", "status": "failed,completed"}  # as sent
    assert (payload["matched"], payload["eligible"], payload["expected_count"]) == (4, 3, 4)
    assert payload["user"]["username"] == "operator-user" and payload["all"] is False
    assert parse_datetime(payload["as_of"]) is not None
    # nothing acted on yet, nothing audited; the status url shows the task
    assert {Task.objects.get(id=t.id).status for t in failed} == {"failed"}
    assert not OperatorAction.objects.exists()
    assert operator.get(response.json()["status_url"]).json()["id"] == str(job.id)


def test_running_the_task_performs_the_action_with_its_counts_and_one_audit_record(
    operator, inline_max_2, taskhub_manual
):
    failed = [task_in("failed", correlation_id="big") for _ in range(3)]
    task_in("completed", correlation_id="big")
    response = post(operator, "retry", {"filter": {"correlation_id": "big"}})
    assert response.status_code == 202

    drained = taskhub_manual.drain()  # the job, then the 3 tasks it retried

    assert [a.name for a in drained.attempts] == ["taskhub.bulk_action"] + ["taskhub.ping"] * 3
    job = Task.objects.get(id=response.json()["task_id"])
    assert job.status == "completed" and job.progress == 100
    assert job.result == {"matched": 4, "eligible": 3, "acted": 3, "skipped": 1}
    assert {Task.objects.get(id=t.id).status for t in failed} == {"completed"}  # ran again
    audit = OperatorAction.objects.get()
    assert (audit.username, audit.source, audit.action) == (
        "operator-user",
        "api",
        "task.bulk_retry",
    )
    assert audit.details["filter"] == {"correlation_id": "big"}
    assert (audit.details["matched"], audit.details["acted"]) == (4, 3)
    assert "interrupted" not in audit.details


def test_the_task_leaves_alone_the_rows_created_after_the_count(
    admin, inline_max_2, taskhub_manual
):
    counted = [task_in("completed", correlation_id="old") for _ in range(3)]
    response = post(admin, "delete", {"filter": {"correlation_id": "old"}})
    assert response.status_code == 202
    later = task_in("completed", correlation_id="old")  # created after the count

    taskhub_manual.drain()

    assert Task.objects.get(id=response.json()["task_id"]).result["acted"] == 3
    assert not Task.objects.filter(id__in=[t.id for t in counted]).exists()
    assert Task.objects.get(id=later.id).status == "completed"


def test_a_count_changed_before_the_task_runs_fails_it_and_changes_nothing(
    operator, inline_max_2, taskhub_manual
):
    rows = [task_in("failed", correlation_id="moving") for _ in range(3)]
    body = {"filter": {"correlation_id": "moving"}, "expected_count": 3}
    response = post(operator, "retry", body)
    assert response.status_code == 202
    Task.objects.filter(id=rows[0].id).delete()  # the filter now matches 2

    assert taskhub_manual.drain().counts == {"failed": 1}

    job = Task.objects.get(id=response.json()["task_id"])
    assert job.status == "failed" and "now matches 2 tasks, not the 3 expected" in job.error
    assert job.attempt == 1  # never tried again
    assert statuses().count("failed") == 3  # the two rows, and the job
    assert not OperatorAction.objects.exists()


def test_a_bulk_retry_of_every_failed_task_never_runs_a_failed_bulk_job_again(
    admin, inline_max_2, taskhub_manual
):
    """A delete by filter that failed (here: its count changed) must not come back to life
    when an operator later retries everything that failed."""
    rows = [task_in("completed", correlation_id="gone") for _ in range(3)]
    body = {"filter": {"correlation_id": "gone"}, "expected_count": 3}
    job_id = post(admin, "delete", body).json()["task_id"]
    Task.objects.filter(id=rows[0].id).delete()
    taskhub_manual.drain()
    assert Task.objects.get(id=job_id).status == "failed"
    task_in("failed", correlation_id="other")

    response = post(admin, "retry", {"filter": {"status": "failed"}})

    assert response.status_code == 200
    assert (response.json()["matched"], response.json()["acted"]) == (2, 1)
    assert Task.objects.get(id=job_id).status == "failed"
    taskhub_manual.drain()
    assert Task.objects.filter(correlation_id="gone").count() == 2  # never deleted


def test_background_true_forces_the_task_for_any_count(operator, taskhub_manual):
    row = task_in("failed", correlation_id="one")

    response = post(operator, "retry", {"filter": {"correlation_id": "one"}, "background": True})

    assert response.status_code == 202 and response.json()["eligible"] == 1
    assert bulk_jobs().count() == 1 and Task.objects.get(id=row.id).status == "failed"
    assert taskhub_manual.drain().counts == {"completed": 2}  # the job, then the retried task
    assert Task.objects.get(id=row.id).status == "completed"


def test_at_or_below_the_threshold_it_still_runs_in_the_request(operator, inline_max_2):
    for _ in range(2):
        task_in("failed", correlation_id="small")

    response = post(operator, "retry", {"filter": {"correlation_id": "small"}})

    assert response.status_code == 200 and response.json()["acted"] == 2
    assert not bulk_jobs().exists()


def test_a_dry_run_never_schedules_anything(operator, inline_max_2):
    for _ in range(3):
        task_in("failed", correlation_id="dry")

    for extra in ({}, {"background": True}):
        body = {"filter": {"correlation_id": "dry"}, "dry_run": True, **extra}
        response = post(operator, "retry", body)
        assert response.status_code == 200 and response.json()["eligible"] == 3

    assert not bulk_jobs().exists() and statuses() == ["failed"] * 3


@pytest.mark.parametrize(
    "role, action, body, code",
    [
        ("operator", "retry", {"filter": {"queue": "default"}, "expected_count": 2}, 409),
        ("operator", "delete", {"filter": {"queue": "default"}}, 403),  # an admin's
        ("viewer", "retry", {"filter": {"queue": "default"}}, 403),
        ("operator", "retry", {"filter": {"stauts": "failed"}}, 400),
        ("operator", "retry", {"filter": {}}, 400),  # every task, without "all"
        ("operator", "retry", {"filter": {"queue": "default"}, "background": "maybe"}, 400),
        ("operator", "explode", {"filter": {"queue": "default"}}, 404),
    ],
)
def test_a_refused_request_schedules_nothing(as_role, inline_max_2, role, action, body, code):
    for _ in range(3):
        task_in("failed")

    response = post(as_role(role), action, {**body, "background": body.get("background", True)})

    assert response.status_code == code, response.content
    assert not bulk_jobs().exists() and statuses() == ["failed"] * 3
    assert not OperatorAction.objects.exists()


def test_the_task_is_internal_and_cannot_be_scheduled_through_the_api(admin):
    body = {"task": "taskhub.bulk_action", "payload": {"action": "delete"}}

    response = admin.post("/api/tasks", body, format="json")

    assert response.status_code == 400 and not bulk_jobs().exists()


def test_the_202_is_in_the_openapi_schema(viewer):
    paths = viewer.get("/api/schema/?format=json").json()["paths"]
    for action in ("retry", "cancel", "delete"):
        assert "202" in paths[f"/api/tasks/actions/{action}"]["post"]["responses"]


def test_cancelling_the_task_stops_it_between_two_batches(
    operator, taskhub_manual, monkeypatch, django_capture_on_commit_callbacks
):
    from taskhub.console import services

    rows = [schedule("taskhub.ping", {}, delay=600, correlation_id="stop") for _ in range(3)]
    job_id = None
    real_run = bulk.run

    def cancel_the_job_after_the_first_batch(*args, **kwargs):
        real_progress = kwargs["progress"]

        def progress(visited, matched):
            if visited == 1:  # the cancel commits (its flag in Redis) before the checkpoint
                with django_capture_on_commit_callbacks(execute=True):
                    services.cancel_task(job_id, actor="someone")
            real_progress(visited, matched)

        return real_run(*args, **{**kwargs, "progress": progress, "batch": 1})

    monkeypatch.setattr(bulk, "run", cancel_the_job_after_the_first_batch)
    body = {"filter": {"correlation_id": "stop"}, "background": True}
    job_id = post(operator, "cancel", body).json()["task_id"]

    taskhub_manual.drain()

    assert Task.objects.get(id=job_id).status == "cancelled"
    left = sorted(Task.objects.get(id=t.id).status for t in rows)
    assert left == ["cancelled", "pending", "pending"]  # the first batch (one row) only
    audit = OperatorAction.objects.get(action="task.bulk_cancel")
    assert audit.details["acted"] == 1 and "TaskCancelled" in audit.details["interrupted"]
