"""The operator console: what each role sees and may do, and that the task list stays cheap."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from taskhub.engine.enqueue import schedule
from taskhub.models import DeadLetter, OperatorAction, QueueState, Task, TaskLog, TaskStatus

pytestmark = pytest.mark.django_db


def failed(name="taskhub.ping", payload=None):
    task = schedule(name, payload or {})
    now = timezone.now()
    Task.objects.filter(id=task.id).update(
        status=TaskStatus.FAILED,
        attempt=5,
        completed_at=now,
        error="RuntimeError: boom",
        traceback="Traceback (most recent call last): boom",
    )
    DeadLetter.objects.create(
        task_id=task.id,
        task_name=task.name,
        queue=task.queue,
        payload=task.payload,
        error="RuntimeError: boom",
        attempts=5,
        created_at=now,
    )
    return task


def test_the_task_list_never_counts_the_whole_table(login):
    for _ in range(3):
        schedule("taskhub.ping", {})
    browser = login("viewer")
    with CaptureQueriesContext(connection) as queries:
        page = browser.get("/admin/taskhub/task/?status=waiting&queue=default")
    assert page.status_code == 200
    counts = [
        q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and "taskhub_task" in q["sql"]
    ]
    assert counts and all(re.search(r"LIMIT \d+", sql) for sql in counts), counts
    assert page.content.decode().count('class="th-badge th-hue-') == 3


def test_search_finds_tasks_by_exact_ids(login):
    task = schedule("taskhub.ping", {}, correlation_id="order-7", user_id="u-9")
    schedule("taskhub.ping", {})
    browser = login("viewer")
    for term in (str(task.id), "order-7", "u-9"):
        body = browser.get(f"/admin/taskhub/task/?q={term}").content.decode()
        assert body.count('class="th-badge th-hue-') == 1, term


def test_the_task_list_filters_by_type_and_shows_each_tasks_type(login):
    payment = schedule("test.typed.payment", {})
    schedule("test.typed.kyc", {})
    schedule("taskhub.ping", {})
    browser = login("viewer")

    page = browser.get("/admin/taskhub/task/?type=payment_processing").content.decode()

    assert page.count('class="th-badge th-hue-') == 1 and str(payment.id)[:8] in page
    assert "payment_processing" in page
    assert (
        browser.get("/admin/taskhub/task/?type=other")
        .content.decode()
        .count('class="th-badge th-hue-')
        == 1
    )
    # The filter lists every type, whether any task has it or not.
    unfiltered = browser.get("/admin/taskhub/task/").content.decode()
    assert all(f"?type={t}" in unfiltered for t in ("data_sync", "blockchain_transaction"))


def test_the_task_page_shows_json_timeline_logs_traceback_and_masks_secrets(login):
    task = failed(
        "http.request",
        {"url": "https://example.com", "headers": {"Authorization": "Bearer s3cret"}},
    )
    TaskLog.objects.create(
        task_id=task.id, attempt=1, level="INFO", message="calling out", at=timezone.now()
    )
    body = login("viewer").get(f"/admin/taskhub/task/{task.id}/change/").content.decode()
    assert "s3cret" not in body and "***" in body
    assert "https://example.com" in body and "th-json" in body
    assert "th-timeline" in body and "created" in body
    assert "calling out" in body and "Traceback (most recent call last)" in body
    assert "th-progress" in body
    assert f"/admin/taskhub/task/{task.id}/do/retry/" not in body  # a viewer can't act


def test_an_operator_retries_from_the_task_page_after_confirming(login):
    task = failed()
    browser = login("operator")
    page = f"/admin/taskhub/task/{task.id}/change/"
    assert f"/admin/taskhub/task/{task.id}/do/retry/" in browser.get(page).content.decode()
    confirm = browser.get(f"/admin/taskhub/task/{task.id}/do/retry/")
    assert "Are you sure" in confirm.content.decode()
    assert Task.objects.get(id=task.id).status == TaskStatus.FAILED  # nothing yet
    browser.post(f"/admin/taskhub/task/{task.id}/do/retry/")
    assert Task.objects.get(id=task.id).status == TaskStatus.PENDING
    action = OperatorAction.objects.get()
    assert (action.username, action.source, action.action) == (
        "operator-person",
        "admin",
        "task.retry",
    )


def test_list_actions_ask_for_confirmation_then_act_and_are_audited(login):
    waiting = [schedule("taskhub.ping", {}) for _ in range(2)]
    browser = login("operator")
    form = {"action": "cancel_tasks", "_selected_action": [str(t.id) for t in waiting]}
    confirm = browser.post("/admin/taskhub/task/", form)
    assert "Yes, cancel tasks" in confirm.content.decode()
    assert not Task.objects.filter(status=TaskStatus.CANCELLED).exists()
    browser.post("/admin/taskhub/task/", {**form, "confirmed": "yes"})
    assert Task.objects.filter(status=TaskStatus.CANCELLED).count() == 2
    assert OperatorAction.objects.filter(action="task.cancel").count() == 2


def test_dead_letters_retry_for_operators_remove_only_for_admins(login):
    letter_task = failed()
    letter = DeadLetter.objects.get(task_id=letter_task.id)
    operator = login("operator")
    listing = operator.get("/admin/taskhub/deadletter/").content.decode()
    assert "retry_dead_letters" in listing and "remove_dead_letters" not in listing
    form = {"action": "retry_dead_letters", "_selected_action": [letter.id], "confirmed": "yes"}
    operator.post("/admin/taskhub/deadletter/", form)
    assert Task.objects.get(id=letter_task.id).status == TaskStatus.PENDING
    other = DeadLetter.objects.get(task_id=failed().id)
    admin = login("admin")
    assert "remove_dead_letters" in admin.get("/admin/taskhub/deadletter/").content.decode()
    admin.post(
        "/admin/taskhub/deadletter/",
        {"action": "remove_dead_letters", "_selected_action": [other.id], "confirmed": "yes"},
    )
    assert not DeadLetter.objects.filter(id=other.id).exists()
    assert OperatorAction.objects.filter(action="dead_letter.remove").count() == 1


def test_viewers_see_but_cannot_act(login):
    task = failed()
    viewer = login("viewer")
    listing = viewer.get("/admin/taskhub/task/").content.decode()
    assert "retry_tasks" not in listing
    assert viewer.post(f"/admin/taskhub/task/{task.id}/do/retry/").status_code == 403
    assert viewer.post("/admin/taskhub/queuestate/default/pause/").status_code == 403
    assert viewer.get(f"/admin/taskhub/task/{task.id}/delete/").status_code == 403
    assert not OperatorAction.objects.exists()


def test_the_dashboard_shows_queue_figures_and_role_specific_buttons(login):
    schedule("email.send", {"to": "a@example.com", "subject": "s", "template": "welcome"})
    failed()
    operator_page = login("operator").get("/admin/taskhub/queuestate/").content.decode()
    row = re.search(r'<tr data-queue="email">.*?</tr>', operator_page, re.S).group(0)
    assert re.search(r'data-field="waiting"><a href="[^"]*queue=email&amp;status=waiting">1<', row)
    assert "/admin/taskhub/queuestate/email/pause/" in row
    assert "/clear/" not in row  # clearing is for admins
    assert (
        "/admin/taskhub/queuestate/email/clear/"
        in login("admin").get("/admin/taskhub/queuestate/").content.decode()
    )
    snapshot = login("viewer").get("/admin/taskhub/queuestate/snapshot.json").json()
    default = next(q for q in snapshot["queues"] if q["queue"] == "default")
    assert default["failed_last_hour"] == 1 and sum(default["throughput"]) == 1
    assert default["failure_rate"] == 1.0


def test_pausing_from_the_dashboard_confirms_then_pauses(login):
    browser = login("operator")
    assert "Are you sure" in browser.get("/admin/taskhub/queuestate/email/pause/").content.decode()
    assert not QueueState.objects.filter(name="email", paused=True).exists()
    response = browser.post("/admin/taskhub/queuestate/email/pause/")
    assert response.status_code == 302
    assert QueueState.objects.get(name="email").paused
    assert OperatorAction.objects.get().action == "queue.pause"
    assert browser.get("/admin/taskhub/queuestate/nope/pause/").status_code == 404


def test_an_admin_clears_a_queue_from_the_dashboard(login):
    task = schedule("email.send", {"to": "a@example.com", "subject": "s", "template": "welcome"})
    assert login("operator").post("/admin/taskhub/queuestate/email/clear/").status_code == 403
    login("admin").post("/admin/taskhub/queuestate/email/clear/")
    assert Task.objects.get(id=task.id).status == TaskStatus.CANCELLED
    assert OperatorAction.objects.get(action="queue.clear").details == {"cancelled": 1}


def test_every_engine_model_has_a_page(login):
    browser = login("viewer")
    for model in (
        "task",
        "taskevent",
        "tasklog",
        "deadletter",
        "queuestate",
        "workerprocess",
        "operatoraction",
    ):
        assert browser.get(f"/admin/taskhub/{model}/").status_code == 200, model
