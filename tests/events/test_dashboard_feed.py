"""The queues dashboard's event feed in headless Chromium: pushed live, paused while hidden."""

from __future__ import annotations

import pytest
from django.db import connections

import taskhub
from taskhub.console.roles import VIEWER, create_user
from tests.admin.browser_support import CHROMIUM, FLAGS, require_browser

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_the_dashboard_feed_shows_a_task_finishing_without_a_reload(
    live, transactional_db, monkeypatch
):
    require_browser()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls between browser
    # steps are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    create_user("vera", VIEWER, password="correct horse battery")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = chromium.new_page()
            # Given a viewer on the queues dashboard with the feed live
            page.goto(f"{live.url}/admin/login/?next=/admin/taskhub/queuestate/")
            page.fill("#id_username", "vera")
            page.fill("#id_password", "correct horse battery")
            page.click("input[type=submit]")
            page.wait_for_function(
                "document.getElementById('th-feed-state').textContent === 'live'", timeout=30000
            )
            # When a task runs
            task = taskhub.schedule("test.progress", {})
            # Then its completion appears in the feed, linked to the task, without a reload
            done = page.locator("#th-feed li.th-feed-completed", has_text="test.progress")
            done.first.wait_for(timeout=30000)
            href = done.first.locator("a").get_attribute("href")
            assert href.endswith(f"{task.id}/change/")
        finally:
            chromium.close()
            connections.close_all()  # the one opened while Playwright's loop ran
