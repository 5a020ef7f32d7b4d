"""Webhooks end to end: real worker and dispatcher processes deliver to a real HTTP server."""

import json

import pytest

from taskhub import schedule
from tests.support import Stack, wait_for, wait_status
from webhooks import services
from webhooks.models import DeliveryAttempt, WebhookDelivery
from webhooks.signing import verify

pytestmark = [pytest.mark.e2e]

SCHEDULE = [1, 2]


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    env = {"WEBHOOKS_SETTINGS_JSON": json.dumps({"RETRY_SCHEDULE": SCHEDULE})}
    with django_db_blocker.unblock():
        running = Stack(processes=1, threads=4, env=env).start()
    yield running
    running.stop()


@pytest.fixture
def e2e(stack, transactional_db):
    return stack


def test_an_endpoint_subscribed_to_task_events_receives_a_signed_task_completed(e2e, receiver):
    endpoint, secret = services.create_endpoint(receiver.url, ["task.*"])

    ping = schedule("taskhub.ping", {})
    wait_status(ping.id, "completed", timeout=15)

    def completed_event():
        for request in receiver.requests:
            event = verify(request.body, request.headers, secret)
            if event["type"] == "task.completed" and event["data"]["task_id"] == str(ping.id):
                return event
        return None

    event = wait_for(completed_event, timeout=15, message="a signed task.completed")
    assert event["data"]["name"] == "taskhub.ping" and event["data"]["result"] == "pong"
    delivery = wait_for(
        lambda: WebhookDelivery.objects.filter(endpoint=endpoint, status="succeeded").first(),
        timeout=10,
        message="the delivery to be recorded as succeeded",
    )
    # Delivering the webhook is itself a task; it must not have produced events of its own.
    assert not WebhookDelivery.objects.filter(payload__name="webhooks.deliver").exists()
    assert delivery.attempts == 1
    wait_status(delivery.task_id, "completed", timeout=10)  # nothing left writing at teardown


def test_an_endpoint_answering_500_is_retried_on_the_schedule_and_ends_permanently_failed(
    e2e, receiver
):
    from .conftest import Answer

    receiver.answer(Answer(status=500))
    services.create_endpoint(receiver.url, ["invoice.*"])

    [delivery] = services.publish("invoice.paid", {"invoice": 7})

    wait_for(
        lambda: WebhookDelivery.objects.get(id=delivery.id).status == "permanently_failed",
        timeout=30,
        message="the delivery to fail permanently",
    )
    attempts = list(DeliveryAttempt.objects.filter(delivery_id=delivery.id).order_by("number"))
    assert [a.response_code for a in attempts] == [500] * (len(SCHEDULE) + 1)
    gaps = [(b.at - a.at).total_seconds() for a, b in zip(attempts, attempts[1:], strict=False)]
    for gap, expected in zip(gaps, SCHEDULE, strict=True):
        # Not before the scheduled delay; late by at most a dispatcher wake-up and the request.
        assert expected - 0.05 <= gap <= expected + 1.5, gaps
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    wait_status(WebhookDelivery.objects.get(id=delivery.id).task_id, "completed", timeout=10)
