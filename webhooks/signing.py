"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

Each request carries ``webhook-id`` (the message id, stable across retries), ``webhook-timestamp``
(Unix seconds) and ``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>`` of
``{id}.{timestamp}.{body}`` keyed with the base64-decoded part of a ``whsec_`` secret — one per
live secret while a secret is being rotated.

Receivers verify with :func:`verify`::

    from webhooks.signing import verify, WebhookVerificationError

    try:
        event = verify(request.body, request.headers, "whsec_...")
    except WebhookVerificationError:
        return HttpResponse(status=400)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

SECRET_PREFIX = "whsec_"


class WebhookVerificationError(Exception):
    """The request is not a valid, fresh, correctly signed webhook."""


class InvalidSecret(ValueError):
    """Not a ``whsec_`` secret with a base64 key of 24 to 64 bytes."""


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret; InvalidSecret if it isn't one."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret("a secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret("the part after whsec_ must be base64") from None
    if not 24 <= len(key) <= 64:
        raise InvalidSecret("a secret's key must be 24 to 64 bytes")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<signature>`` for one secret."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    secrets: Sequence[str], message_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every secret given."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": " ".join(sign(s, message_id, ts, body) for s in secrets),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"missing {name} header")


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | Sequence[str],
    *,
    tolerance: float = 300,
    now: float | None = None,
) -> Any:
    """Check a received webhook and return its parsed JSON body.

    Raises WebhookVerificationError if a header is missing, the timestamp is more than
    ``tolerance`` seconds away from now (a replay), or no signature matches any of the secrets.
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    message_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature").split()
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a number") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    secrets = [secret] if isinstance(secret, str) else list(secret)
    expected = [sign(s, message_id, timestamp, raw) for s in secrets]
    for candidate in signatures:
        if any(hmac.compare_digest(candidate, e) for e in expected):
            try:
                return json.loads(raw)
            except ValueError:
                raise WebhookVerificationError("the body is not JSON") from None
    raise WebhookVerificationError("no matching signature")
