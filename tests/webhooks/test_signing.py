"""Standard Webhooks signatures, and verify() as a receiver uses it."""

import base64
import time

import pytest

from webhooks.signing import (
    InvalidSecret,
    WebhookVerificationError,
    generate_secret,
    sign,
    signature_headers,
    verify,
)

BODY = b'{"type":"invoice.paid","data":{"id":1}}'


def test_a_signed_body_verifies_and_returns_the_event():
    secret = generate_secret()
    headers = signature_headers([secret], "msg_1", BODY)

    assert verify(BODY, headers, secret) == {"type": "invoice.paid", "data": {"id": 1}}


def test_the_signature_is_the_standard_webhooks_test_vector():
    # From the Standard Webhooks reference implementations.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp", "secret"])
def test_anything_changed_after_signing_fails_verification(tamper):
    secret = generate_secret()
    headers = signature_headers([secret], "msg_1", BODY)
    body = BODY
    if tamper == "body":
        body = BODY.replace(b"1", b"2")
    elif tamper == "id":
        headers["webhook-id"] = "msg_2"
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    else:
        secret = generate_secret()
    with pytest.raises(WebhookVerificationError):
        verify(body, headers, secret)


def test_a_replayed_old_message_is_refused_by_the_timestamp_tolerance():
    secret = generate_secret()
    headers = signature_headers([secret], "msg_1", BODY, timestamp=int(time.time()) - 600)

    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(BODY, headers, secret, tolerance=300)
    assert verify(BODY, headers, secret, tolerance=900)


def test_during_rotation_both_secrets_sign_so_either_verifies():
    old, new = generate_secret(), generate_secret()
    headers = signature_headers([new, old], "msg_1", BODY)

    assert len(headers["webhook-signature"].split()) == 2
    assert verify(BODY, headers, old) and verify(BODY, headers, new)
    assert verify(BODY, headers, [generate_secret(), new])


def test_missing_headers_are_refused():
    with pytest.raises(WebhookVerificationError, match="webhook-signature"):
        verify(BODY, {"webhook-id": "m", "webhook-timestamp": "1"}, generate_secret())


@pytest.mark.parametrize(
    "secret",
    ["sk_abc", "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()],
)
def test_secrets_not_in_whsec_form_are_refused(secret):
    with pytest.raises(InvalidSecret):
        sign(secret, "m", 1, b"")
