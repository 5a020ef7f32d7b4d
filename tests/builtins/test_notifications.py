"""Notifications: notify_user through real workers (in-app, e-mail via SMTP, webhook signal),
per-channel retries, preferences, and the REST API."""

import json

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from notifications.models import Notification
from notifications.services import notify_user, set_preference
from taskhub import InvalidTaskRequest, schedule
from taskhub.console.roles import create_user
from taskhub.engine.broker import get_redis, key
from taskhub.models import Task
from tests.support import wait_for, wait_status

pytestmark = [pytest.mark.e2e]


def deliver_task(notification):
    return Task.objects.get(name="notifications.deliver", payload__notificationId=notification.pk)


def webhook_events(notification_id):
    raw = get_redis().lrange(key("test", "webhook-events"), 0, -1)
    return [e for e in map(json.loads, raw) if e["data"]["id"] == notification_id]


def test_a_notification_is_shown_in_app_emailed_and_published_as_a_webhook_event(e2e, smtp):
    set_preference("u-1", ["in_app", "email", "webhook"], email="u1@example.com")

    meta = {"status": "approved", "subject": "KYC approved"}
    notification = notify_user("u-1", "kyc_status_changed", "Verification approved", meta)

    done = wait_status(deliver_task(notification).id, "completed", timeout=20)
    assert done.result["channels"] == {"in_app": "sent", "email": "sent", "webhook": "sent"}
    message = wait_for(lambda: smtp.handler.to("u1@example.com"), message="the e-mail")[0]
    assert message["Subject"] == "KYC approved"
    assert "approved" in message.get_body(("plain",)).get_content()
    (event,) = webhook_events(notification.pk)
    assert event["type"] == "notification.created" and event["data"]["user_id"] == "u-1"


def test_a_failing_channel_is_retried_alone_and_the_others_are_not_sent_twice(e2e, smtp):
    set_preference("u-2", ["in_app", "email", "webhook"], email="u2@example.com")

    notification = notify_user(
        "u-2",
        "payment_receipt",
        "Payment received",
        metadata={
            "fail_webhook_times": 1,
            "amount": "9.99",
            "currency": "USD",
            "reference": "PAY-2",
        },
    )

    done = wait_status(deliver_task(notification).id, "completed", timeout=30)
    assert done.attempt == 2
    row = Notification.objects.get(pk=notification.pk)
    assert row.deliveries["webhook"]["attempts"] == 2
    assert row.deliveries["email"]["attempts"] == 1
    assert row.deliveries["in_app"]["attempts"] == 1
    assert (
        Task.objects.filter(name="email.send", correlation_id=f"notification-{row.pk}").count() == 1
    )
    wait_for(lambda: smtp.handler.to("u2@example.com"), message="the receipt e-mail")
    assert len(smtp.handler.to("u2@example.com")) == 1
    assert "PAY-2" in smtp.handler.to("u2@example.com")[0].get_body(("plain",)).get_content()
    assert len(webhook_events(row.pk)) == 1


def test_preferences_turn_channels_off(e2e):
    set_preference("u-3", ["in_app"])

    notification = notify_user("u-3", "welcome", "Hi", channels=["in_app", "email", "webhook"])

    assert notification.channels == ["in_app"]
    done = wait_status(deliver_task(notification).id, "completed", timeout=20)
    assert done.result["channels"] == {"in_app": "sent"}
    assert Notification.objects.get(pk=notification.pk).deliveries["in_app"]["status"] == "sent"


def test_the_task_queue_payload_creates_the_notification_once(e2e):
    get_user_model().objects.create_user("dora", email="dora@example.com")
    user = get_user_model().objects.get(username="dora")

    task = schedule(
        "notifications.deliver",
        {
            "userId": user.pk,
            "type": "welcome",
            "message": "Welcome, Dora",
            "metadata": {"name": "Dora"},
        },
    )

    done = wait_status(task.id, "completed", timeout=60)
    (row,) = Notification.objects.filter(user_id=str(user.pk))
    assert done.result["notification_id"] == row.pk
    assert row.deliveries["email"]["status"] == "sent"  # the Django user's address was used
    email_task = Task.objects.get(id=row.deliveries["email"]["ref"])
    assert email_task.payload["to"] == ["dora@example.com"]
    assert email_task.payload["template"] == "welcome"


def test_unknown_channels_are_refused(db):
    with pytest.raises(InvalidTaskRequest):
        notify_user("u-4", "x", "y", channels=["sms"])
    assert not Notification.objects.exists()


def test_the_api_lists_unread_notifications_and_marks_one_read(db):
    user = create_user("reader", "operator")[0]
    client = APIClient()
    client.force_authenticate(user)
    first = notify_user("u-5", "welcome", "one")
    notify_user("u-5", "welcome", "two")
    notify_user("someone-else", "welcome", "three")

    listed = client.get("/api/notifications", {"user_id": "u-5", "unread": "true"}).json()
    assert [n["message"] for n in listed["results"]] == ["two", "one"]

    read = client.post(f"/api/notifications/{first.pk}/read")
    assert read.status_code == 200 and read.json()["read_at"]
    unread = client.get("/api/notifications", {"user_id": "u-5", "unread": "true"}).json()
    assert [n["message"] for n in unread["results"]] == ["two"]
    assert client.post("/api/notifications/999999/read").status_code == 404


def test_the_api_requires_authentication(db):
    assert APIClient().get("/api/notifications").status_code in (401, 403)
