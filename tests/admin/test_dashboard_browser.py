"""What an operator sees in a real browser: headless Chromium against a real uvicorn server
serving the project (static files included) on the test database with real rows (the
``live_server_url`` and ``browser`` fixtures of tests/admin/conftest.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from taskhub.console import analytics
from taskhub.console.roles import create_user
from taskhub.engine.enqueue import schedule
from taskhub.models import QueueState, Task, TaskStatus
from tests.admin.browser_support import ARTIFACTS, collect_errors, log_in

EMAIL = {"to": "a@example.com", "subject": "Hi", "template": "welcome"}

pytestmark = pytest.mark.e2e


def _rows():
    now = timezone.now()
    for _ in range(3):
        schedule("email.send", EMAIL)
    schedule("email.send", EMAIL, delay=3600)
    for minutes_ago in (1, 2, 2, 5, 20):
        task = schedule("email.send", EMAIL)
        Task.objects.filter(id=task.id).update(
            status=TaskStatus.COMPLETED,
            attempt=1,
            duration=0.3,
            completed_at=now - dt.timedelta(minutes=minutes_ago),
        )
    task = schedule("email.send", EMAIL)
    Task.objects.filter(id=task.id).update(
        status=TaskStatus.FAILED,
        attempt=5,
        error="boom",
        completed_at=now - dt.timedelta(minutes=3),
    )


def test_an_operator_watches_and_steers_queues_on_the_dashboard(live_server_url, browser, settings):
    settings.TASKHUB = {**settings.TASKHUB, "DASHBOARD_REFRESH_SECONDS": 1}
    analytics.overview_snapshot.clear()
    create_user("olivia", "operator", password="correct horse battery")
    _rows()
    page = browser.new_page(viewport={"width": 1500, "height": 900})
    errors = collect_errors(page)

    # Given an operator who logs in to the console
    log_in(page, live_server_url, "olivia", "correct horse battery", "/admin/taskhub/queuestate/")
    page.wait_for_selector('tr[data-queue="email"]')

    # Then the email queue shows its counts, failure rate and a drawn throughput chart
    row = page.locator('tr[data-queue="email"]')
    cell = lambda field: row.locator(f'[data-field="{field}"]').inner_text().strip()  # noqa: E731
    assert cell("waiting") == "3"
    assert cell("delayed") == "1"
    assert cell("completed_last_hour") == "5"
    assert cell("failed_last_hour") == "1"
    assert cell("failure_rate") == "17%"
    assert cell("state") == "active"
    assert cell("oldest_waiting_seconds").endswith(" s")
    chart = row.locator("svg.th-chart")
    assert chart.locator("rect").count() == 60
    assert chart.get_attribute("data-total") == "6"
    # styles and script came from the project's own static files
    assert page.evaluate("getComputedStyle(document.querySelector('.th-active')).color") != ""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # When more work arrives, the counters change without a reload
    schedule("email.send", EMAIL)
    page.wait_for_function(
        """() => document.querySelector('tr[data-queue="email"] [data-field="waiting"]')
                 .innerText.trim() === '4'""",
        timeout=15_000,
    )

    # And the waiting count links to the filtered task list
    row.locator('[data-field="waiting"] a').click()
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 4
    assert "queue=email" in page.url and "status=waiting" in page.url
    page.go_back()

    # When the operator pauses the queue, a confirmation comes first, then the state changes
    page.locator('tr[data-queue="email"] a', has_text="Pause").click()
    assert "Are you sure" in page.inner_text("#content")
    assert not QueueState.objects.filter(name="email", paused=True).exists()
    page.click("input[type=submit][value^='Yes']")
    page.wait_for_selector('tr[data-queue="email"] .th-paused')
    assert "Queue email paused" in page.inner_text(".messagelist")
    assert QueueState.objects.get(name="email").paused
    # an operator has no Clear button: that is for admins
    assert page.locator('tr[data-queue="email"] a', has_text="Clear").count() == 0
    assert errors == []


def test_an_operator_retries_every_failed_task_of_a_filtered_list(live_server_url, browser):
    create_user("omar", "operator", password="correct horse battery")
    now = timezone.now()
    for _ in range(60):  # more than a page of the list (50)
        task = schedule("email.send", EMAIL)
        Task.objects.filter(id=task.id).update(status=TaskStatus.FAILED, completed_at=now)
    schedule("email.send", EMAIL, delay=3600)
    page = browser.new_page(viewport={"width": 1500, "height": 900})
    log_in(
        page,
        live_server_url,
        "omar",
        "correct horse battery",
        "/admin/taskhub/task/%3Fstatus%3Dfailed",
    )
    page.wait_for_selector("#result_list")

    # When the operator asks to retry all that the filtered list matches, the count comes first
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "bulk-list.png"))
    page.click("text=Retry all matching…")
    page.wait_for_selector(".th-confirm")
    assert "60 tasks match" in page.inner_text(".th-confirm")
    page.screenshot(path=str(ARTIFACTS / "bulk-confirm.png"), full_page=True)
    assert Task.objects.filter(status=TaskStatus.FAILED).count() == 60

    # Then, confirmed, every one of them is retried, not only the page shown
    page.click("input[type=submit][value^='Yes']")
    page.wait_for_selector(".messagelist")
    assert "60 tasks matched: 60 retried, 0 skipped." in page.inner_text(".messagelist")
    assert not Task.objects.filter(status=TaskStatus.FAILED).exists()
    assert Task.objects.filter(status=TaskStatus.PENDING).count() == 61


def test_an_operator_searches_the_task_list_and_exports_what_it_found(live_server_url, browser):
    """The search box takes the search language; the export links carry the search along."""
    create_user("sara", "viewer", password="correct horse battery")
    now = timezone.now()
    wanted = schedule("email.send", {**EMAIL, "to": "ada@example.com"}, user_id="42")
    Task.objects.filter(id=wanted.id).update(
        status=TaskStatus.FAILED, error="SMTP timeout after 30 s", completed_at=now
    )
    for error in ("SMTP timeout after 30 s", "mailbox full"):  # one term short of a match each
        other = schedule("email.send", EMAIL)
        Task.objects.filter(id=other.id).update(status=TaskStatus.FAILED, error=error)
    schedule("email.send", {**EMAIL, "to": "ada@example.com"})  # pending: no error at all
    page = browser.new_page(viewport={"width": 1500, "height": 900})
    log_in(page, live_server_url, "sara", "correct horse battery", "/admin/taskhub/task/")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 4

    page.fill("#searchbar", "error:timeout payload.to:ada@example.com status:failed")
    page.press("#searchbar", "Enter")
    page.wait_for_url("**q=*")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and str(wanted.id)[:8] in rows.first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "search.png"))

    with page.expect_download() as download:
        page.click("text=Export CSV")
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and str(wanted.id) in lines[1]  # the header, then the one match

    page.fill("#searchbar", "error:ti")  # too short to search by: told why, nothing listed
    page.press("#searchbar", "Enter")
    page.wait_for_selector(".messagelist")
    assert page.inner_text(".messagelist").startswith("Search:")
    assert page.locator("#result_list tbody tr").count() == 0
