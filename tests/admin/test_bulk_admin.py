"""The task list's "… all matching" buttons: every task the current filters match (not only the
page), a confirmation showing the count, then the action, audited once."""

import datetime as dt
import re

import pytest
from django.db import connection, connections
from django.utils import timezone

from taskhub.console import bulk
from taskhub.engine.enqueue import schedule
from taskhub.models import OperatorAction, Task, TaskStatus
from tests.support import override_taskhub, task_in

pytestmark = pytest.mark.django_db

LIST = "/admin/taskhub/task/"


def hidden(page: str) -> dict:
    """The confirmation form's hidden fields, as the browser would post them back."""
    return dict(re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', page))


def test_an_operator_retries_every_failed_task_of_the_filter_beyond_the_first_page(login):
    failed = [task_in(TaskStatus.FAILED) for _ in range(55)]  # more than a page (50)
    task_in(TaskStatus.FAILED, "http.request", {"url": "https://example.com"})
    task_in(TaskStatus.COMPLETED)
    browser = login("operator")
    listing = browser.get(f"{LIST}?task=taskhub.ping").content.decode()
    assert f"{LIST}bulk/retry/?task=taskhub.ping" in listing
    assert "bulk/delete/" not in listing  # deleting is an admin's

    confirm = browser.get(f"{LIST}bulk/retry/?task=taskhub.ping").content.decode()

    assert "<b>56</b> tasks match" in confirm and "<b>55</b> of them" in confirm
    assert "The other 1 is skipped" in confirm
    assert Task.objects.filter(status=TaskStatus.FAILED).count() == 56  # nothing yet
    done = browser.post(f"{LIST}bulk/retry/?task=taskhub.ping", hidden(confirm), follow=True)
    assert "56 tasks matched: 55 retried, 1 skipped." in done.content.decode()
    assert {t.status for t in Task.objects.filter(id__in=[t.id for t in failed])} == {"pending"}
    assert Task.objects.get(name="http.request").status == TaskStatus.FAILED
    action = OperatorAction.objects.get()
    assert (action.username, action.source, action.action) == (
        "operator-person",
        "admin",
        "task.bulk_retry",
    )
    assert action.details["filter"] == {"task": "taskhub.ping"}
    assert action.details["acted"] == 55


def test_the_admin_list_filters_are_applied_status_included(login):
    waiting = [schedule("taskhub.ping", {}) for _ in range(2)]
    delayed = schedule("taskhub.ping", {}, delay=600)
    browser = login("operator")
    url = f"{LIST}bulk/cancel/?status=waiting"

    browser.post(url, hidden(browser.get(url).content.decode()))

    assert {Task.objects.get(id=t.id).status for t in waiting} == {TaskStatus.CANCELLED}
    assert Task.objects.get(id=delayed.id).status == TaskStatus.PENDING


def test_a_count_changed_since_the_confirmation_changes_nothing_and_asks_again(login):
    task_in(TaskStatus.FAILED)
    browser = login("operator")
    url = f"{LIST}bulk/retry/?status=failed"
    form = hidden(browser.get(url).content.decode())
    late = task_in(TaskStatus.FAILED)
    Task.objects.filter(id=late.id).update(created_at=timezone.now() - dt.timedelta(hours=1))

    again = browser.post(url, form).content.decode()

    assert "now matches 2 tasks, not the 1 expected" in again and "<b>2</b> tasks match" in again
    assert Task.objects.filter(status=TaskStatus.FAILED).count() == 2
    assert not OperatorAction.objects.exists()


def test_delete_is_for_admins_and_never_takes_a_live_task(login):
    task_in(TaskStatus.COMPLETED)
    live = schedule("taskhub.ping", {})
    operator = login("operator")
    assert operator.get(f"{LIST}bulk/delete/?queue=default").status_code == 403
    admin = login("admin")
    assert "bulk/delete/" in admin.get(LIST).content.decode()
    url = f"{LIST}bulk/delete/?queue=default"
    confirm = admin.get(url).content.decode()
    assert "cannot be undone" in confirm

    admin.post(url, hidden(confirm))

    assert list(Task.objects.values_list("id", flat=True)) == [live.id]
    assert OperatorAction.objects.get().action == "task.bulk_delete"


def test_with_no_filter_the_box_for_every_task_must_be_ticked(login):
    task_in(TaskStatus.COMPLETED)
    browser = login("admin")
    url = f"{LIST}bulk/delete/"
    confirm = browser.get(url).content.decode()
    assert "no filter is set" in confirm and 'name="all"' in confirm

    refused = browser.post(url, hidden(confirm)).content.decode()

    assert "tick the box" in refused and Task.objects.count() == 1
    browser.post(url, {**hidden(confirm), "all": "yes"})
    assert not Task.objects.exists()
    assert OperatorAction.objects.get().details["filter"] == {"all": True}


def test_viewers_get_no_buttons_and_cannot_act(login):
    task_in(TaskStatus.FAILED)
    viewer = login("viewer")
    assert "bulk/" not in viewer.get(LIST).content.decode()
    for action in ("retry", "cancel", "delete"):
        assert viewer.get(f"{LIST}bulk/{action}/?status=failed").status_code == 403
        assert viewer.post(f"{LIST}bulk/{action}/?status=failed").status_code == 403
    assert Task.objects.get().status == TaskStatus.FAILED and not OperatorAction.objects.exists()


def test_a_tampered_confirmation_changes_nothing(login):
    task_in(TaskStatus.FAILED)
    browser = login("operator")
    url = f"{LIST}bulk/retry/?status=failed"

    for form in ({}, {"expected_count": "x", "as_of": "now"}, {"expected_count": "1"}):
        page = browser.post(url, form)
        assert page.status_code == 200 and "confirm again" in page.content.decode()

    assert Task.objects.get().status == TaskStatus.FAILED and not OperatorAction.objects.exists()
    assert browser.get(f"{LIST}bulk/explode/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_batches_commit_on_their_own_even_with_atomic_requests(login, monkeypatch):
    monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)
    inside_a_transaction = []
    real_run = bulk.run

    def spy(*args, **kwargs):
        inside_a_transaction.append(connection.in_atomic_block)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(bulk, "run", spy)
    task_in(TaskStatus.FAILED)
    browser = login("operator")
    url = f"{LIST}bulk/retry/?status=failed"

    browser.post(url, hidden(browser.get(url).content.decode()))

    assert inside_a_transaction == [False]
    assert Task.objects.get().status == TaskStatus.PENDING


# -- above BULK_ACTION_INLINE_MAX: the action as a taskhub.bulk_action task -----------------------


@pytest.fixture
def inline_max_2():
    with override_taskhub(BULK_ACTION_INLINE_MAX=2):
        yield


def test_above_the_threshold_the_action_is_a_task_linked_from_the_message(
    login, inline_max_2, taskhub_manual
):
    failed = [task_in(TaskStatus.FAILED) for _ in range(3)]
    other = task_in(TaskStatus.FAILED, "http.request", {"url": "https://example.com"})
    task_in(TaskStatus.COMPLETED)
    browser = login("operator")
    url = f"{LIST}bulk/retry/?task=taskhub.ping&q=-status:completed"
    confirm = browser.get(url).content.decode()
    assert "<b>3</b> tasks match" in confirm

    done = browser.post(url, hidden(confirm), follow=True).content.decode()

    job = Task.objects.get(name="taskhub.bulk_action")
    link = f'<a href="{LIST}{job.id}/change/">{str(job.id)[:8]}</a>'
    assert "3 tasks matched, 3 to retry" in done and link in done
    assert job.payload["source"] == "admin" and job.payload["expected_count"] == 3
    assert job.payload["filter"] == {"task": "taskhub.ping", "q": "-status:completed"}
    assert Task.objects.filter(status=TaskStatus.FAILED).count() == 4  # nothing yet
    assert not OperatorAction.objects.exists()
    # the same confirmation posted again: still one task
    browser.post(url, hidden(confirm))
    assert Task.objects.filter(name="taskhub.bulk_action").count() == 1

    taskhub_manual.drain()

    job.refresh_from_db()
    assert job.status == "completed"
    assert job.result == {"matched": 3, "eligible": 3, "acted": 3, "skipped": 0}
    assert {Task.objects.get(id=t.id).status for t in failed} == {"completed"}  # retried, ran
    assert Task.objects.get(id=other.id).status == TaskStatus.FAILED
    action = OperatorAction.objects.get()
    assert (action.username, action.source, action.action) == (
        "operator-person",
        "admin",
        "task.bulk_retry",
    )
    assert action.details["filter"] == {"task": "taskhub.ping", "q": "-status:completed"}
    # the task's page shows its result
    page = browser.get(f"{LIST}{job.id}/change/").content.decode()
    assert "acted" in page


def test_above_the_threshold_a_changed_count_schedules_nothing(login, inline_max_2):
    for _ in range(3):
        task_in(TaskStatus.FAILED)
    browser = login("operator")
    url = f"{LIST}bulk/retry/?status=failed"
    form = hidden(browser.get(url).content.decode())
    late = task_in(TaskStatus.FAILED)
    Task.objects.filter(id=late.id).update(created_at=timezone.now() - dt.timedelta(hours=1))

    again = browser.post(url, form).content.decode()

    assert "now matches 4 tasks, not the 3 expected" in again
    assert not Task.objects.filter(name="taskhub.bulk_action").exists()
    assert Task.objects.filter(status=TaskStatus.FAILED).count() == 4


def test_an_operator_who_lost_the_role_before_the_task_ran_changes_nothing(
    login, inline_max_2, taskhub_manual
):
    from django.contrib.auth import get_user_model

    for _ in range(3):
        task_in(TaskStatus.FAILED)
    browser = login("operator")
    url = f"{LIST}bulk/retry/?status=failed"
    browser.post(url, hidden(browser.get(url).content.decode()))
    get_user_model().objects.filter(username="operator-person").update(is_active=False)

    assert taskhub_manual.drain().counts == {"failed": 1}

    job = Task.objects.get(name="taskhub.bulk_action")
    assert "no longer exists or is inactive" in job.error
    assert Task.objects.filter(status=TaskStatus.FAILED).count() == 4  # 3 and the job
    assert not OperatorAction.objects.exists()
