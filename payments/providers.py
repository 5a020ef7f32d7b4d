"""Payment providers: a small backend class per provider, chosen by ``PAYMENTS["PROVIDER"]``.

DTR ("Digital Treasury Receipt") publishes no API, so taskhub defines the contract it speaks —
docs/payments.md's "The DTR provider contract" section documents it, and the sandbox implements it:

* every request carries ``X-DTR-Key``, ``X-DTR-Timestamp`` (unix seconds) and ``X-DTR-Signature``
  = hex HMAC-SHA256(api secret, ``"{timestamp}.{METHOD}.{path}.{raw body}"``);
* ``POST /v1/payments`` with an ``Idempotency-Key`` header and ``{reference, user_id, amount,
  currency, payment_method_id, callback_url}`` → ``{id, status, ...}``; the same key returns the
  same provider payment;
* ``GET /v1/payments/{id}`` → ``{id, status, reason, ...}``; status ``processing | completed |
  declined | canceled``;
* ``POST /v1/payments/{id}/refunds`` with an ``Idempotency-Key`` header and ``{reason}`` → a full
  refund of a completed payment: ``{id, payment_id, status: "refunded", ...}``; the same key (or
  any key, once the payment is refunded) returns the same refund; a payment that is not
  completed → 409;
* callbacks ``POST {callback_url}`` with ``{id, type, created_at, data: {payment_id, status}}`` and
  ``X-DTR-Signature: t={unix},v1={hex HMAC-SHA256(webhook secret, "{t}.{raw body}")}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from django.utils.module_loading import import_string

from .conf import callback_tolerance, payments_settings
from .money import format_amount


class ProviderError(Exception):
    """The provider could not be reached or failed on its side: worth retrying."""


class ProviderRejected(Exception):
    """The provider refused the request (4xx): retrying the same request cannot help."""


class CallbackRejected(Exception):
    """A callback failed verification; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 401):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, kw_only=True)
class ProviderPayment:
    id: str
    #: normalised: processing | completed | failed | canceled
    status: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class ProviderRefund:
    id: str
    payment_id: str
    status: str


@dataclass(frozen=True, kw_only=True)
class CallbackEvent:
    event_id: str
    provider_payment_id: str
    created_at: int


DTR_STATUSES = {
    "processing": "processing",
    "pending": "processing",
    "completed": "completed",
    "declined": "failed",
    "failed": "failed",
    "canceled": "canceled",
    "refunded": "refunded",
}


def request_signature(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    message = f"{timestamp}.{method.upper()}.{path}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_timestamped_signature(
    header: str, raw_body: bytes, secret: str, now: float | None = None
) -> int:
    """Check ``t=…,v1=…`` over ``"{t}.{raw body}"`` before anything is parsed; return ``t``.

    Constant-time comparison; several v1 values (secret rotation) are accepted.
    """
    if not header:
        raise CallbackRejected("missing signature header", 401)
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        parts.setdefault(name, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise CallbackRejected("malformed signature header", 401) from None
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256)
    candidates = parts.get("v1", [])
    if not any(hmac.compare_digest(expected.hexdigest(), c) for c in candidates):
        raise CallbackRejected("signature does not match", 401)
    now = time.time() if now is None else now
    if abs(now - timestamp) > callback_tolerance():
        raise CallbackRejected("stale callback: timestamp outside the tolerance", 400)
    return timestamp


class PaymentProvider:
    """What the payments app needs from a provider."""

    name = "base"

    def create_payment(self, payment, idempotency_key: str) -> ProviderPayment:
        raise NotImplementedError

    def get_payment(self, provider_payment_id: str) -> ProviderPayment:
        raise NotImplementedError

    def refund_payment(
        self, provider_payment_id: str, idempotency_key: str, reason: str = ""
    ) -> ProviderRefund:
        raise NotImplementedError

    def verify_callback(self, headers, raw_body: bytes) -> CallbackEvent:
        raise NotImplementedError


class DtrProvider(PaymentProvider):
    """HTTP client for the DTR contract above (the sandbox by default)."""

    name = "dtr"

    def __init__(self) -> None:
        self.base_url = payments_settings.DTR_BASE_URL.rstrip("/")
        self.api_key = payments_settings.DTR_API_KEY
        self._api_secret = payments_settings.DTR_API_SECRET
        self._webhook_secret = payments_settings.DTR_WEBHOOK_SECRET

    def _request(self, method: str, path: str, body: dict | None = None, headers=None) -> dict:
        raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        url = f"{self.base_url}{path}"
        timestamp = str(int(time.time()))
        signed_path = urlsplit(url).path
        sent = {
            "Content-Type": "application/json",
            "X-DTR-Key": self.api_key,
            "X-DTR-Timestamp": timestamp,
            "X-DTR-Signature": request_signature(
                self._api_secret, timestamp, method, signed_path, raw
            ),
            **(headers or {}),
        }
        try:
            response = httpx.request(
                method, url, content=raw, headers=sent, timeout=payments_settings.HTTP_TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise ProviderError(f"DTR unreachable: {type(exc).__name__}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise ProviderError(f"DTR answered {response.status_code}")
        if response.status_code >= 400:
            raise ProviderRejected(
                f"DTR refused the request ({response.status_code}): {response.text[:200]}"
            )
        return response.json()

    @staticmethod
    def _parse(data: dict) -> ProviderPayment:
        status = DTR_STATUSES.get(str(data.get("status")))
        if status is None:
            raise ProviderError(f"DTR returned an unknown status {data.get('status')!r}")
        return ProviderPayment(id=str(data["id"]), status=status, reason=data.get("reason") or "")

    def create_payment(self, payment, idempotency_key: str) -> ProviderPayment:
        body = {
            "reference": str(payment.id),
            "user_id": payment.user_id,
            "amount": format_amount(payment.amount, payment.currency),
            "currency": payment.currency,
            "payment_method_id": payment.payment_method_id,
            "callback_url": payments_settings.CALLBACK_BASE_URL.rstrip("/")
            + "/api/payments/callbacks/dtr",
        }
        data = self._request("POST", "/v1/payments", body, {"Idempotency-Key": idempotency_key})
        return self._parse(data)

    def get_payment(self, provider_payment_id: str) -> ProviderPayment:
        return self._parse(self._request("GET", f"/v1/payments/{provider_payment_id}"))

    def refund_payment(
        self, provider_payment_id: str, idempotency_key: str, reason: str = ""
    ) -> ProviderRefund:
        data = self._request(
            "POST",
            f"/v1/payments/{provider_payment_id}/refunds",
            {"reason": reason[:200]},
            {"Idempotency-Key": idempotency_key},
        )
        return ProviderRefund(
            id=str(data["id"]), payment_id=str(data["payment_id"]), status=str(data["status"])
        )

    def verify_callback(self, headers, raw_body: bytes) -> CallbackEvent:
        verify_timestamped_signature(
            headers.get("X-DTR-Signature", ""), raw_body, self._webhook_secret
        )
        # Only now, with the signature checked, is the body parsed.
        try:
            event = json.loads(raw_body)
            return CallbackEvent(
                event_id=str(event["id"]),
                provider_payment_id=str(event["data"]["payment_id"]),
                created_at=int(event.get("created_at") or 0),
            )
        except (ValueError, KeyError, TypeError):
            raise CallbackRejected("callback body is not a DTR event", 400) from None


PROVIDERS = {"dtr": "payments.providers.DtrProvider"}


def get_provider(name: str = "dtr") -> PaymentProvider:
    try:
        return import_string(PROVIDERS[name])()
    except KeyError:
        raise ProviderRejected(f"unknown payment provider {name!r}") from None
