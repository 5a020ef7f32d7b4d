"""Through real worker processes: a receiver answering with NUL bytes gets the webhook once.

Before, recording the attempt failed on PostgreSQL after the request was sent; the delivery task
failed, was retried (webhooks.deliver retries after 5 s) and sent the webhook again each time.
"""

import time

import pytest

from taskhub.safety.storable import REPLACEMENT
from tests.support import Stack, wait_for, wait_status
from webhooks import services
from webhooks.models import DeliveryAttempt, WebhookDelivery

from .conftest import Answer

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        running = Stack(processes=1, threads=4).start()
    yield running
    running.stop()


def test_a_nul_answer_is_recorded_once_and_the_webhook_is_not_sent_again(
    stack, transactional_db, receiver
):
    receiver.answer(Answer(status=200, body=b"accepted\x00\x00"))
    services.create_endpoint(receiver.url, ["invoice.*"])
    [delivery] = services.publish("invoice.paid", {"invoice": 9})

    delivered = wait_for(
        lambda: WebhookDelivery.objects.filter(id=delivery.id, status="succeeded").first(),
        timeout=20,
        message="the delivery to be recorded as succeeded",
    )
    assert wait_status(delivered.task_id, "completed", timeout=10)
    time.sleep(6)  # past the delivery task's first retry delay (5 s): nothing is sent again

    assert len(receiver.requests) == 1
    [attempt] = DeliveryAttempt.objects.filter(delivery=delivery)
    assert attempt.response_body == f"accepted{REPLACEMENT}{REPLACEMENT}"
