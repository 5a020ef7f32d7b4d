"""``GET /api/tasks/{id}`` shows the newest events and logs, not all of them; every one of them
is reachable through ``/events`` and ``/logs``, page by page."""

import uuid

import pytest
from django.utils import timezone

from taskhub.console.api.serializers import DETAIL_HISTORY
from taskhub.engine.enqueue import schedule
from taskhub.models import TaskEvent, TaskLog

pytestmark = pytest.mark.django_db

EXTRA = 130  # more than a detail shows, and more than one page of the default size


@pytest.fixture
def busy_task():
    task = schedule("taskhub.ping", {})
    now = timezone.now()
    TaskEvent.objects.bulk_create(
        TaskEvent(task=task, kind="progress", attempt=1, at=now, data={"n": n})
        for n in range(EXTRA)
    )
    TaskLog.objects.bulk_create(
        TaskLog(task=task, attempt=1, level="INFO", message=f"line {n}", at=now)
        for n in range(EXTRA)
    )
    return task


def _all_pages(client, url):
    seen, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += body["results"]
        url, pages = body["next"], pages + 1
    return seen, pages


def test_the_detail_holds_the_newest_events_and_logs_with_counts_and_links(viewer, busy_task):
    data = viewer.get(f"/api/tasks/{busy_task.id}").json()

    events = list(TaskEvent.objects.filter(task=busy_task).order_by("id"))
    assert data["events_count"] == len(events) == EXTRA + 1  # and the "created" event
    assert [e["id"] for e in data["events"]] == [e.id for e in events[-DETAIL_HISTORY:]]
    assert data["logs_count"] == EXTRA
    assert [line["message"] for line in data["logs"]] == [
        f"line {n}" for n in range(EXTRA - DETAIL_HISTORY, EXTRA)
    ]
    assert data["events_url"].endswith(f"/api/tasks/{busy_task.id}/events")
    assert data["logs_url"].endswith(f"/api/tasks/{busy_task.id}/logs")


def test_every_event_and_log_line_is_reached_page_by_page_in_order(viewer, busy_task):
    events, event_pages = _all_pages(viewer, f"/api/tasks/{busy_task.id}/events?limit=40")
    logs, log_pages = _all_pages(viewer, f"/api/tasks/{busy_task.id}/logs")

    expected = list(TaskEvent.objects.filter(task=busy_task).order_by("id").values_list("id"))
    assert [(e["id"],) for e in events] == expected
    assert event_pages == 4  # 131 events, 40 a page
    assert [line["message"] for line in logs] == [f"line {n}" for n in range(EXTRA)]
    assert log_pages == 2  # 130 lines, 100 a page by default


def test_another_tasks_history_is_not_in_the_pages(viewer, busy_task):
    other = schedule("taskhub.ping", {})
    events, _ = _all_pages(viewer, f"/api/tasks/{other.id}/events")
    logs, _ = _all_pages(viewer, f"/api/tasks/{other.id}/logs")
    assert [e["kind"] for e in events] == ["created"] and logs == []


@pytest.mark.parametrize("kind", ["events", "logs"])
def test_history_of_an_unknown_task_is_404_and_a_bad_page_is_400(viewer, busy_task, kind):
    assert viewer.get(f"/api/tasks/{uuid.uuid4()}/{kind}").status_code == 404
    assert viewer.get(f"/api/tasks/not-a-uuid/{kind}").status_code == 404
    for query in ("limit=0", "limit=501", "limit=x", "cursor=garbage"):
        response = viewer.get(f"/api/tasks/{busy_task.id}/{kind}?{query}")
        assert response.status_code == 400, (query, response.content)
