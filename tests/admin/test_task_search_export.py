"""The admin task list: its search box takes the search language, and its Export CSV / JSONL
links download the list as filtered and searched, every page of it."""

import csv
import io
import json
from urllib.parse import quote

import pytest
from django.utils import timezone

from taskhub.engine.enqueue import schedule
from taskhub.models import OperatorAction, Task, TaskStatus

pytestmark = pytest.mark.django_db


def fail(task: Task, error: str) -> Task:
    Task.objects.filter(id=task.id).update(
        status=TaskStatus.FAILED, error=error, completed_at=timezone.now()
    )
    return task


@pytest.fixture
def tasks():
    return {
        "timeout": fail(schedule("test.noop", {"user_id": 42}), "TimeoutError: read timed out"),
        "refused": fail(schedule("test.noop", {"user_id": 7}), "ConnectionError: refused"),
        "waiting": schedule("taskhub.ping", {"user_id": "42"}, correlation_id="order-7"),
    }


def badges(page) -> int:
    return page.content.decode().count('class="th-badge th-hue-')


def test_the_search_box_takes_qualifiers_and_bare_words(login, tasks):
    browser = login("viewer")
    cases = {
        "error:timeout": 1,
        "payload.user_id:42": 2,
        "payload.user_id:42 status:failed": 1,
        "name:noop": 2,
        "refused": 1,
        "order-7": 1,
        str(tasks["refused"].id): 1,
        f"id:{str(tasks['refused'].id)[:12]}": 1,
    }
    for q, expected in cases.items():
        page = browser.get("/admin/taskhub/task/", {"q": q})
        assert page.status_code == 200
        assert badges(page) == expected, q


def test_a_search_it_cannot_read_shows_why_and_lists_nothing(login, tasks):
    page = login("viewer").get("/admin/taskhub/task/", {"q": "colour:red"}, follow=True)
    assert page.status_code == 200
    body = page.content.decode()
    assert "Search: Unknown qualifier colour:" in body
    assert badges(page) == 0


def test_the_export_links_carry_the_lists_filters_and_search(login, tasks):
    body = login("viewer").get("/admin/taskhub/task/?status=failed&q=timed").content.decode()
    for file_format in ("csv", "jsonl"):
        link = f'href="/admin/taskhub/task/export/{file_format}/?q=timed&amp;status=failed"'
        assert link in body


def test_an_export_is_the_list_as_filtered_and_searched(login, tasks):
    browser = login("viewer")
    response = browser.get("/admin/taskhub/task/export/csv/?status=failed&q=" + quote("name:noop"))
    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {r["id"] for r in rows} == {str(tasks["timeout"].id), str(tasks["refused"].id)}

    response = browser.get("/admin/taskhub/task/export/jsonl/?q=" + quote("payload.user_id:42"))
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert {json.loads(line)["id"] for line in lines} == {
        str(tasks["timeout"].id),
        str(tasks["waiting"].id),
    }
    action = OperatorAction.objects.filter(action="task.export").latest("id")
    assert action.source == "admin" and action.details["format"] == "jsonl"


def test_an_export_of_a_bad_search_goes_back_to_the_list_with_the_reason(login, tasks):
    browser = login("viewer")
    response = browser.get("/admin/taskhub/task/export/csv/?q=" + quote("status:done"))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/taskhub/task/?")
    page = browser.get(response["Location"])
    assert "status:done is not a status" in page.content.decode()
    assert not OperatorAction.objects.filter(action="task.export").exists()


def test_an_unknown_export_format_is_not_found(login):
    assert login("viewer").get("/admin/taskhub/task/export/xlsx/").status_code == 404
