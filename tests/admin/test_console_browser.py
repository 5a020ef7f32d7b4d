"""The console in a real browser, beyond the queues' counters: the charts over time, dark mode
(the OS preference and the admin's theme toggle) and the task list's keyboard shortcuts.

Headless Chromium against the project on uvicorn (tests/admin/conftest.py). With
UPDATE_SCREENSHOTS=1 these tests also rewrite the pictures of docs/console.md
(docs/screenshots/); otherwise the screenshots go to var/test-artifacts/.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid

import pytest
from django.utils import timezone

from taskhub.console import analytics, timeseries
from taskhub.console.roles import create_user
from taskhub.engine.enqueue import schedule
from taskhub.models import Task, TaskStatus
from tests.admin.browser_support import collect_errors, log_in, screenshot

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
EMAIL = {"to": "a@example.com", "subject": "Hi", "template": "welcome"}

#: WCAG's contrast ratio of two computed CSS colours ("rgb(r, g, b)"), worked out in the page.
CONTRAST = """([fg, bg]) => {
  const channels = (css) => css.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const luminance = (css) => {
    const [r, g, b] = channels(css).map((c) => {
      c /= 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [hi, lo] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
  return (hi + 0.05) / (lo + 0.05);
}"""


def finished_row(queue, status, completed_at, *, wait, run, name="email.send"):
    started = completed_at - dt.timedelta(seconds=run)
    queued = started - dt.timedelta(seconds=wait)
    return Task(
        id=uuid.uuid4(),
        name=name,
        queue=queue,
        status=status,
        payload=EMAIL,
        attempt=1,
        scheduled_at=queued,
        queued_at=queued,
        started_at=started,
        completed_at=completed_at,
        duration=run,
        error="boom" if status == TaskStatus.FAILED else "",
        created_at=queued,
        updated_at=completed_at,
    )


def history():
    """Finished email tasks spread over the last hour (40: 36 completed, 4 failed) and, earlier
    the same day, 10 more; waits and run times that grow with the minute."""
    now = timezone.now()
    rows = []
    for i in range(40):
        status = TaskStatus.FAILED if i % 10 == 9 else TaskStatus.COMPLETED
        at = now - dt.timedelta(minutes=i * 1.4, seconds=1)
        rows.append(finished_row("email", status, at, wait=0.2 + i * 0.05, run=0.3 + (i % 7) * 0.1))
    for hours in range(2, 12):
        at = now - dt.timedelta(hours=hours)
        rows.append(finished_row("email", TaskStatus.COMPLETED, at, wait=1.5, run=0.8))
    for i in range(12):
        at = now - dt.timedelta(minutes=i * 4 + 1)
        rows.append(
            finished_row("image-processing", TaskStatus.COMPLETED, at, wait=3, run=2 + i % 3)
        )
    Task.objects.bulk_create(rows)


def busy_day():
    """A few tasks every minute of the last hour and every quarter of the day, with waits and
    run times that vary (so that p50 and p95 part), and a burst of failures: the docs' data."""
    pick = random.Random(8)
    now = timezone.now()
    rows = []
    for minute in range(58):
        load = 1 + abs(30 - minute) / 10
        for _ in range(pick.randint(2, 8)):
            failed = 20 <= minute <= 23 and pick.random() < 0.5
            rows.append(
                finished_row(
                    "email",
                    TaskStatus.FAILED if failed else TaskStatus.COMPLETED,
                    now - dt.timedelta(minutes=minute, seconds=pick.uniform(1, 59)),
                    wait=pick.expovariate(1 / load),
                    run=0.2 + pick.expovariate(4),
                )
            )
        if minute % 3 == 0:
            rows.append(
                finished_row(
                    "image-processing",
                    TaskStatus.COMPLETED,
                    now - dt.timedelta(minutes=minute, seconds=30),
                    wait=pick.uniform(0.5, 4),
                    run=pick.uniform(1, 6),
                )
            )
    for quarter in range(5, 95):
        for _ in range(pick.randint(10, 60)):
            at = now - dt.timedelta(minutes=quarter * 15 + pick.uniform(0, 15))
            rows.append(
                finished_row("email", TaskStatus.COMPLETED, at, wait=pick.expovariate(1), run=0.3)
            )
    Task.objects.bulk_create(rows)


def test_the_dashboard_charts_throughput_wait_and_run_time_over_the_hour_and_the_day(
    live_server_url, browser
):
    timeseries.clear()
    analytics.overview_snapshot.clear()
    create_user("olivia", "viewer", password=PASSWORD)
    history()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = collect_errors(page)

    # Given a viewer on the queues dashboard
    log_in(page, live_server_url, "olivia", PASSWORD, "/admin/taskhub/queuestate/")
    email = '.th-trend[data-queue="email"]'
    page.wait_for_selector(f'{email} svg[data-chart="throughput"][data-total]')

    # Then each busy queue has its three charts, drawn from the last hour's rows
    throughput = page.locator(f'{email} svg[data-chart="throughput"]')
    assert throughput.get_attribute("data-total") == "40"
    assert throughput.locator("rect.th-bar-completed").count() >= 30
    assert throughput.locator("rect.th-bar-failed").count() == 4
    wait = page.locator(f'{email} svg[data-chart="wait"]')
    run = page.locator(f'{email} svg[data-chart="run"]')
    assert int(wait.get_attribute("data-points")) >= 30
    assert wait.locator("polyline.th-line-p50").count() >= 1
    assert run.locator("polyline.th-line-p95").count() >= 1
    # idle queues are named, not drawn
    assert page.locator('.th-trend[data-queue="default"]').count() == 0
    assert "default" in page.inner_text("#th-trends-idle")
    assert page.locator('.th-trend[data-queue="image-processing"]').count() == 1

    # When the operator switches to the last day, the older tasks count too, in 15-minute buckets
    page.click('#th-trends button[data-window="1d"]')
    page.wait_for_selector('#th-trends[data-window="1d"]')
    assert throughput.get_attribute("data-total") == "50"
    assert page.locator('#th-trends button[data-window="1d"]').get_attribute("aria-pressed") == (
        "true"
    )
    assert errors == []


@pytest.fixture
def every_status():
    """One task in each status, so that the task list shows every badge."""
    for status in TaskStatus.values:
        task = schedule("email.send", EMAIL)
        Task.objects.filter(id=task.id).update(status=status)


def badge_colours(page):
    """[(status, text colour, background colour)] of every badge on the page."""
    return page.eval_on_selector_all(
        ".th-badge",
        """badges => badges.map(b => [b.textContent.trim(), getComputedStyle(b).color,
                                       getComputedStyle(b).backgroundColor])""",
    )


def theme_of(page) -> dict:
    body = page.evaluate("getComputedStyle(document.body).backgroundColor")
    badges = badge_colours(page)
    return {"body": body, "badges": {status: (fg, bg) for status, fg, bg in badges}}


def test_dark_mode_follows_the_os_and_the_theme_toggle_and_badges_stay_readable(
    live_server_url, browser, every_status
):
    create_user("olivia", "viewer", password=PASSWORD)
    pages = {}
    for scheme in ("light", "dark"):
        page = browser.new_page(viewport={"width": 1280, "height": 800}, color_scheme=scheme)
        errors = collect_errors(page)
        log_in(page, live_server_url, "olivia", PASSWORD, "/admin/taskhub/task/")
        page.wait_for_selector("#result_list")
        assert errors == []
        pages[scheme] = page

    light, dark = theme_of(pages["light"]), theme_of(pages["dark"])

    # Every status is shown, and dark mode changes the page and every badge's background
    assert set(light["badges"]) == set(TaskStatus.values) == set(dark["badges"])
    assert light["body"] != dark["body"]
    for status in TaskStatus.values:
        assert light["badges"][status][1] != dark["badges"][status][1], status
    # ... while every badge's text stays readable (WCAG AA: 4.5:1) in both
    for theme in (light, dark):
        for status, pair in theme["badges"].items():
            assert pages["light"].evaluate(CONTRAST, list(pair)) >= 4.5, (status, pair)
    # The body text on its background too
    for page in pages.values():
        body = "getComputedStyle(document.body)"
        text = page.evaluate(f"[{body}.color, {body}.backgroundColor]")
        assert page.evaluate(CONTRAST, text) >= 7

    # The admin's theme toggle wins over the OS preference: dark on a light system
    page = pages["light"]
    page.evaluate("localStorage.setItem('theme', 'dark')")
    page.reload()
    page.wait_for_selector("#result_list")
    assert theme_of(page) == dark
    screenshot(page, "console-tasks-dark.png")
    page.evaluate("localStorage.setItem('theme', 'light')")
    pages["dark"].evaluate("localStorage.setItem('theme', 'light')")
    pages["dark"].reload()
    pages["dark"].wait_for_selector("#result_list")
    assert theme_of(pages["dark"]) == light


def test_screenshots_of_the_dashboard_light_and_dark(live_server_url, browser):
    """The docs' pictures of the dashboard (and a check that it draws without an error in both
    themes): queues with waiting, running and finished work."""
    timeseries.clear()
    analytics.overview_snapshot.clear()
    create_user("olivia", "operator", password=PASSWORD)
    busy_day()
    for _ in range(3):
        schedule("email.send", EMAIL)
    for scheme in ("light", "dark"):
        page = browser.new_page(viewport={"width": 1440, "height": 1000}, color_scheme=scheme)
        errors = collect_errors(page)
        log_in(page, live_server_url, "olivia", PASSWORD, "/admin/taskhub/queuestate/")
        page.wait_for_selector('.th-trend[data-queue="email"] svg[data-total]')
        page.wait_for_function(
            "!/connecting/.test(document.getElementById('th-feed-state').textContent)"
        )
        chart_bar = page.locator(".th-bar-completed").first
        fill = chart_bar.evaluate("bar => getComputedStyle(bar).fill")
        assert fill and fill != "none"
        screenshot(page, f"console-dashboard-{scheme}.png")
        screenshot(page.locator("#th-trends"), f"console-charts-{scheme}.png")
        assert errors == []
        page.close()


def test_keyboard_shortcuts_move_open_search_help_and_retry(live_server_url, browser):
    create_user("olivia", "operator", password=PASSWORD)
    for _ in range(3):
        task = schedule("email.send", EMAIL)
        Task.objects.filter(id=task.id).update(
            status=TaskStatus.FAILED, attempt=5, error="boom", completed_at=timezone.now()
        )
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = collect_errors(page)
    log_in(page, live_server_url, "olivia", PASSWORD, "/admin/taskhub/task/")
    page.wait_for_selector("#result_list")
    current = "#result_list tbody tr.th-kbd-current"

    def current_id() -> str:
        return page.locator(f"{current} th a").inner_text().strip()

    listed = [t.strip() for t in page.locator("#result_list tbody th a").all_inner_texts()]
    assert page.locator(current).count() == 0

    # j / k move the selection down and up; it never leaves the list
    page.keyboard.press("j")
    assert current_id() == listed[0]
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert current_id() == listed[2] and page.locator(current).count() == 1
    page.keyboard.press("k")
    assert current_id() == listed[1]
    assert page.locator(current).get_attribute("aria-current") == "true"

    # / focuses the search box, and typing there is not a shortcut
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "searchbar"
    page.keyboard.type("jk")
    assert page.input_value("#searchbar") == "jk" and current_id() == listed[1]
    page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement === document.body")
    page.fill("#searchbar", "")
    page.keyboard.press("Escape")

    # ? shows the keys, Esc closes them
    page.keyboard.press("?")
    help_dialog = page.locator("dialog#th-shortcuts")
    assert help_dialog.is_visible() and "retry" in help_dialog.inner_text()
    screenshot(page, "console-shortcuts.png")
    page.keyboard.press("Escape")
    assert not help_dialog.is_visible()

    # o opens the selected task's page
    page.keyboard.press("j")
    selected = current_id()
    page.keyboard.press("o")
    page.wait_for_url("**/change/**")
    assert selected in page.inner_text("#content")
    page.go_back()
    page.wait_for_selector("#result_list")

    # r retries the selected task through the list's action: a confirmation first
    page.keyboard.press("j")
    page.keyboard.press("j")
    chosen = current_id()
    page.keyboard.press("r")
    page.wait_for_selector(".th-confirm")
    confirmation = page.inner_text(".th-confirm")
    assert "Retry tasks — 1 row" in confirmation and chosen in confirmation
    assert not Task.objects.filter(status=TaskStatus.PENDING).exists()
    page.click("input[type=submit][value^='Yes']")
    page.wait_for_selector(".messagelist")
    assert "done for 1" in page.inner_text(".messagelist")
    retried = Task.objects.get(status=TaskStatus.PENDING)
    assert str(retried.id).startswith(chosen)
    assert errors == []


def test_a_viewer_pressing_r_is_told_retrying_needs_an_operator(live_server_url, browser):
    create_user("vera", "viewer", password=PASSWORD)
    task = schedule("email.send", EMAIL)
    Task.objects.filter(id=task.id).update(status=TaskStatus.FAILED)
    page = browser.new_page()
    log_in(page, live_server_url, "vera", PASSWORD, "/admin/taskhub/task/")
    page.wait_for_selector("#result_list")
    page.keyboard.press("j")
    page.keyboard.press("r")
    assert "needs the operator role" in page.inner_text("#th-kbd-notice")
    assert Task.objects.get(id=task.id).status == TaskStatus.FAILED
