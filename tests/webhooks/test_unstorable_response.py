"""A receiver answering bytes a database cannot store (NUL is refused by PostgreSQL's text): the
attempt is recorded with U+FFFD in their place, so the request is not sent again.

Before, recording the attempt failed after the request had been sent; the delivery task then
failed and was retried, and every retry sent the webhook again.
"""

import pytest

from taskhub.errors import InvalidTaskRequest
from taskhub.safety.storable import REPLACEMENT
from webhooks import services
from webhooks.delivery import attempt_delivery
from webhooks.models import DeliveryAttempt, WebhookDelivery

from .conftest import Answer

pytestmark = pytest.mark.django_db


def test_a_response_body_with_nul_bytes_is_recorded_replaced_and_not_sent_again(receiver):
    receiver.answer(Answer(status=500, body=b"\x00\x01binary\x00\xff"))
    services.create_endpoint(receiver.url, ["invoice.*"])
    [delivery] = services.publish("invoice.paid", {"invoice": 7})

    result = attempt_delivery(str(delivery.id), 1)

    assert result["status"] == "failed" and result["response_code"] == 500
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert attempt.response_body == f"{REPLACEMENT}\x01binary{REPLACEMENT}{REPLACEMENT}"
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.status == "failed"
    # The same attempt run again (a redelivered message) sends nothing.
    assert "skipped" in attempt_delivery(str(delivery.id), 1)
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("payload", [{"note": "a\x00b"}, {"a\x00b": 1}, {"half": "\ud800"}])
def test_a_payload_that_cannot_be_stored_is_refused_and_nothing_is_stored(receiver, payload):
    services.create_endpoint(receiver.url, ["invoice.*"])

    with pytest.raises(InvalidTaskRequest, match="not storable"):
        services.publish("invoice.paid", payload)

    assert not WebhookDelivery.objects.exists()
