"""Domain events reach webhook endpoints through the signals listed in WEBHOOKS["SIGNALS"]."""

import pytest

from blockchain.signals import blockchain_event
from notifications.models import Notification
from notifications.services import notify_user
from notifications.signals import notification_created, operator_alert
from notifications.tasks import _publish_webhook
from webhooks import services
from webhooks.events import connect_domain_signals
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db


def published():
    return sorted(WebhookDelivery.objects.values_list("event_type", "payload"))


def test_a_webhook_notification_is_published_as_notification_created():
    # Given an endpoint subscribed to notifications
    services.create_endpoint("http://127.0.0.1:9/hook", ["notification.*"])
    notification = notify_user("u-1", "welcome", "hello", channels=["in_app"])
    # When the notifications app delivers its webhook channel
    _publish_webhook(notification)
    # Then one notification.created delivery carries the notification
    [delivery] = WebhookDelivery.objects.all()
    assert delivery.event_type == "notification.created"
    assert delivery.payload["message"] == "hello"


def test_chain_events_and_operator_alerts_are_published_with_their_type():
    services.create_endpoint("http://127.0.0.1:9/hook", ["*"])
    blockchain_event.send(sender=None, event={"type": "blockchain.event", "data": {"n": 1}})
    operator_alert.send(
        sender=None, event={"type": "task.dead_lettered", "data": {"task_name": "x", "count": 2}}
    )
    assert published() == [
        ("blockchain.event", {"n": 1}),
        ("task.dead_lettered", {"count": 2, "task_name": "x"}),
    ]


def test_nothing_is_stored_when_no_endpoint_subscribes():
    services.create_endpoint("http://127.0.0.1:9/hook", ["task.*"])
    notification = notify_user("u-2", "welcome", "hello", channels=["in_app"])
    notification_created.send(
        sender=Notification,
        notification=notification,
        event={"type": "notification.created", "data": {}},
    )
    blockchain_event.send(sender=None, event={"type": "blockchain.event", "data": {}})
    assert published() == []


def test_a_signal_path_that_does_not_import_is_a_configuration_error(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.WEBHOOKS = {**settings.WEBHOOKS, "SIGNALS": ["nowhere.signals.nothing"]}
    with pytest.raises(ImproperlyConfigured):
        connect_domain_signals()
