"""Webhook deliveries by outcome on /metrics."""

import pytest
from django.utils import timezone

from taskhub.console.roles import create_user
from webhooks import services
from webhooks.models import DeliveryAttempt, DeliveryStatus, WebhookDelivery

pytestmark = pytest.mark.django_db


def test_metrics_show_deliveries_by_status_and_attempts_by_outcome(client):
    # Given one delivery that succeeded after a 503 and one still pending
    endpoint, _ = services.create_endpoint("http://127.0.0.1:9/hook", ["*"])
    done, waiting = services.publish_many([("a.b", {}), ("c.d", {})], endpoints=[endpoint])
    WebhookDelivery.objects.filter(id=done.id).update(status=DeliveryStatus.SUCCEEDED)
    for number, code in ((1, 503), (2, 200)):
        DeliveryAttempt.objects.create(
            delivery=done,
            number=number,
            at=timezone.now(),
            url=endpoint.url,
            response_code=code,
            duration=0.1,
        )
    # When a viewer scrapes /metrics
    client.force_login(create_user("scraper", "viewer")[0])
    text = client.get("/metrics").content.decode()
    # Then deliveries appear by status and attempts by outcome
    assert 'taskhub_webhook_deliveries{status="succeeded"} 1.0' in text
    assert 'taskhub_webhook_deliveries{status="pending"} 1.0' in text
    assert 'taskhub_webhook_attempts_last_hour{outcome="5xx"} 1.0' in text
    assert 'taskhub_webhook_attempts_last_hour{outcome="2xx"} 1.0' in text
    assert 'taskhub_webhook_endpoints{state="active"} 1.0' in text
