"""Schedules and webhooks in the console: confirmed, audited actions by role; no secrets shown."""

import pytest

from taskhub.models import OperatorAction, ScheduleRun, TaskSchedule
from taskhub.scheduler import schedules
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

SCHEDULES = "/admin/taskhub/taskschedule/"
DELIVERIES = "/admin/webhooks/webhookdelivery/"
ENDPOINTS = "/admin/webhooks/webhookendpoint/"


def a_schedule(name="hourly") -> TaskSchedule:
    return schedules.create_schedule(name, "taskhub.ping", cron="0 * * * *")


def failed_delivery() -> WebhookDelivery:
    endpoint, _ = services.create_endpoint("https://hooks.example.com/in", ["*"])
    [delivery] = services.publish("order.paid", {"order": 1}, endpoints=[endpoint])
    WebhookDelivery.objects.filter(id=delivery.id).update(status=DeliveryStatus.FAILED)
    return delivery


def test_an_operator_runs_a_schedule_now_after_confirming(login):
    row = a_schedule()
    browser = login("operator")
    form = {"action": "run_now", "_selected_action": [row.pk]}
    assert "Yes, run schedules now" in browser.post(SCHEDULES, form).content.decode()
    assert not ScheduleRun.objects.exists()
    browser.post(SCHEDULES, {**form, "confirmed": "yes"})
    assert ScheduleRun.objects.get(schedule=row).trigger == "manual"
    assert OperatorAction.objects.get(action="schedule.run_now").target_id == "hourly"


def test_an_operator_disables_and_enables_a_schedule_with_an_audit_trail(login):
    row = a_schedule()
    browser = login("operator")
    browser.post(SCHEDULES, {"action": "disable", "_selected_action": [row.pk], "confirmed": "yes"})
    row.refresh_from_db()
    assert not row.enabled and row.next_run_at is None
    browser.post(SCHEDULES, {"action": "enable", "_selected_action": [row.pk], "confirmed": "yes"})
    row.refresh_from_db()
    assert row.enabled and row.next_run_at is not None
    assert [a.action for a in OperatorAction.objects.order_by("id")] == [
        "schedule.disable",
        "schedule.enable",
    ]


def test_viewers_see_schedules_but_cannot_act_or_edit(login):
    row = a_schedule()
    viewer = login("viewer")
    listing = viewer.get(SCHEDULES)
    assert listing.status_code == 200 and "hourly" in listing.content.decode()
    assert "run_now" not in listing.content.decode()
    assert viewer.get(f"{SCHEDULES}add/").status_code == 403
    viewer.post(SCHEDULES, {"action": "run_now", "_selected_action": [row.pk], "confirmed": "yes"})
    assert not ScheduleRun.objects.exists()


def test_an_admin_creates_a_schedule_in_the_console_and_it_is_audited(login):
    browser = login("admin")
    response = browser.post(
        f"{SCHEDULES}add/",
        {
            "name": "nightly",
            "task_name": "taskhub.ping",
            "payload": "{}",
            "cron": "0 3 * * *",
            "timezone": "UTC",
            "enabled": "on",
            "runs-TOTAL_FORMS": "0",
            "runs-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert TaskSchedule.objects.get(name="nightly").next_run_at is not None
    assert OperatorAction.objects.filter(action="schedule.create", target_id="nightly").exists()


def test_an_operator_redelivers_after_confirming_and_retries_all_failed(login):
    first, second = failed_delivery(), failed_delivery()
    browser = login("operator")
    form = {"action": "redeliver", "_selected_action": [str(first.id)]}
    assert "Yes, redeliver deliveries" in browser.post(DELIVERIES, form).content.decode()
    browser.post(DELIVERIES, {**form, "confirmed": "yes"})
    assert WebhookDelivery.objects.get(id=first.id).status == DeliveryStatus.PENDING
    assert "Retry all failed" in browser.get(DELIVERIES).content.decode()
    confirm = browser.get(f"{DELIVERIES}retry-all/").content.decode()
    assert "Yes, retry all failed deliveries" in confirm
    browser.post(f"{DELIVERIES}retry-all/", {"confirmed": "yes"})
    assert WebhookDelivery.objects.get(id=second.id).status == DeliveryStatus.PENDING
    actions = OperatorAction.objects.values_list("action", "details")
    assert ("webhook_delivery.retry_all", {"count": 1}) in list(actions)


def test_viewers_cannot_redeliver_or_retry_all(login):
    failed_delivery()
    viewer = login("viewer")
    assert "Retry all failed" not in viewer.get(DELIVERIES).content.decode()
    assert viewer.post(f"{DELIVERIES}retry-all/", {"confirmed": "yes"}).status_code == 403
    assert WebhookDelivery.objects.get().status == DeliveryStatus.FAILED


def test_webhook_secrets_are_never_on_a_console_page(login):
    delivery = failed_delivery()
    endpoint = WebhookEndpoint.objects.get()
    browser = login("admin")
    pages = [
        ENDPOINTS,
        f"{ENDPOINTS}{endpoint.pk}/change/",
        DELIVERIES,
        f"{DELIVERIES}{delivery.pk}/change/",
        "/admin/webhooks/deliveryattempt/",
    ]
    for page in pages:
        html = browser.get(page).content.decode()
        assert endpoint.secret not in html and "whsec_" not in html, page


def test_an_admin_creates_an_endpoint_and_sees_its_secret_only_once(login):
    browser = login("admin")
    created = browser.post(
        f"{ENDPOINTS}add/",
        {
            "url": "https://hooks.example.com/new",
            "event_types": '["*"]',
            "description": "",
            "active": "on",
        },
        follow=True,
    )
    endpoint = WebhookEndpoint.objects.get(url="https://hooks.example.com/new")
    assert endpoint.secret in created.content.decode()
    assert endpoint.secret not in browser.get(f"{ENDPOINTS}{endpoint.pk}/change/").content.decode()
    assert OperatorAction.objects.filter(
        action="webhook_endpoint.create", target_id=str(endpoint.pk)
    ).exists()
