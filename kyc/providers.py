"""KYC providers: ``dtr`` and ``onramp``, each a small HTTP client with its signing scheme.

* DTR: requests signed like DTR payments (``X-DTR-Key``, ``X-DTR-Timestamp``, ``X-DTR-Signature``
  over ``"{ts}.{METHOD}.{path}.{raw body}"``); documents go as multipart to
  ``POST /v1/kyc/documents``, status from ``GET /v1/kyc/documents/{id}``; callbacks signed
  ``X-DTR-Signature: t=…,v1=…`` over ``"{t}.{raw body}"``.
* Onramp Money: ``X-ONRAMP-APIKEY``, ``X-ONRAMP-PAYLOAD`` = base64(JSON {timestamp ms, body}),
  ``X-ONRAMP-SIGNATURE`` = hex HMAC-SHA512(secret, payload); webhooks carry the same two headers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from .conf import kyc_settings


class ProviderError(Exception):
    """Unreachable or failing provider: worth retrying."""


class ProviderRejected(Exception):
    """The provider refused the request: retrying cannot help."""


class CallbackRejected(Exception):
    def __init__(self, message: str, status: int = 401):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, kw_only=True)
class ProviderCase:
    external_id: str
    #: normalised: in_review | approved | rejected | needs_review | expired
    status: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class KycCallback:
    event_id: str
    external_id: str


def _tolerance() -> int:
    return int(getattr(settings, "CALLBACK_TOLERANCE_SECONDS", 300))


def _send(method: str, url: str, **kwargs) -> dict:
    try:
        response = httpx.request(method, url, timeout=10.0, **kwargs)
    except httpx.HTTPError as exc:
        raise ProviderError(f"provider unreachable: {type(exc).__name__}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise ProviderError(f"provider answered {response.status_code}")
    if response.status_code >= 400:
        raise ProviderRejected(f"provider refused ({response.status_code}): {response.text[:200]}")
    return response.json()


class DtrKyc:
    name = "dtr"
    STATUSES = {
        "in_review": "in_review",
        "pending": "in_review",
        "approved": "approved",
        "rejected": "rejected",
        "needs_review": "needs_review",
        "expired": "expired",
    }

    def __init__(self) -> None:
        self.base_url = kyc_settings.DTR_BASE_URL.rstrip("/")

    def _signed(self, request: httpx.Request) -> httpx.Request:
        body = request.read()
        timestamp = str(int(time.time()))
        message = f"{timestamp}.{request.method}.{urlsplit(str(request.url)).path}.".encode()
        secret = kyc_settings.DTR_API_SECRET.encode()
        request.headers["X-DTR-Key"] = kyc_settings.DTR_API_KEY
        request.headers["X-DTR-Timestamp"] = timestamp
        request.headers["X-DTR-Signature"] = hmac.new(
            secret, message + body, hashlib.sha256
        ).hexdigest()
        return request

    def _call(self, request: httpx.Request) -> dict:
        try:
            with httpx.Client(timeout=10.0) as client:
                response = client.send(self._signed(request))
        except httpx.HTTPError as exc:
            raise ProviderError(f"DTR unreachable: {type(exc).__name__}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise ProviderError(f"DTR answered {response.status_code}")
        if response.status_code >= 400:
            raise ProviderRejected(f"DTR refused ({response.status_code}): {response.text[:200]}")
        return response.json()

    def _parse(self, data: dict) -> ProviderCase:
        status = self.STATUSES.get(str(data.get("status")))
        if status is None:
            raise ProviderError(f"DTR returned an unknown KYC status {data.get('status')!r}")
        return ProviderCase(
            external_id=data["id"], status=status, reasons=tuple(data.get("reasons") or ())
        )

    def submit(self, case, content: bytes, callback_url: str) -> ProviderCase:
        request = httpx.Request(
            "POST",
            f"{self.base_url}/v1/kyc/documents",
            data={
                "reference": case.reference,
                "user_id": case.user_id,
                "document_type": case.document_type,
                "callback_url": callback_url,
            },
            files={"file": (case.document_name, content)},
        )
        return self._parse(self._call(request))

    def status(self, external_id: str) -> ProviderCase:
        request = httpx.Request("GET", f"{self.base_url}/v1/kyc/documents/{external_id}")
        return self._parse(self._call(request))

    def verify_callback(self, headers, raw_body: bytes) -> KycCallback:
        header = headers.get("X-DTR-Signature", "")
        if not header:
            raise CallbackRejected("missing signature header")
        parts: dict[str, list[str]] = {}
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            parts.setdefault(name, []).append(value)
        try:
            timestamp = int(parts["t"][0])
        except (KeyError, ValueError):
            raise CallbackRejected("malformed signature header") from None
        secret = kyc_settings.DTR_WEBHOOK_SECRET.encode()
        expected = hmac.new(secret, f"{timestamp}.".encode() + raw_body, hashlib.sha256)
        if not any(hmac.compare_digest(expected.hexdigest(), v) for v in parts.get("v1", [])):
            raise CallbackRejected("signature does not match")
        if abs(time.time() - timestamp) > _tolerance():
            raise CallbackRejected("stale callback: timestamp outside the tolerance", 400)
        try:
            event = json.loads(raw_body)
            return KycCallback(
                event_id=str(event["id"]), external_id=str(event["data"]["document_id"])
            )
        except (ValueError, KeyError, TypeError):
            raise CallbackRejected("callback body is not a DTR KYC event", 400) from None


class OnrampKyc:
    name = "onramp"
    STATUSES = {
        "IN_REVIEW": "in_review",
        "COMPLETED": "approved",
        "REJECTED": "rejected",
        "MANUAL_REVIEW": "needs_review",
        "EXPIRED": "expired",
    }

    def __init__(self) -> None:
        self.base_url = kyc_settings.ONRAMP_BASE_URL.rstrip("/")

    def _post(self, path: str, body: dict) -> dict:
        payload = base64.b64encode(
            json.dumps(
                {"timestamp": int(time.time() * 1000), "body": body}, separators=(",", ":")
            ).encode()
        ).decode()
        signature = hmac.new(
            kyc_settings.ONRAMP_API_SECRET.encode(), payload.encode(), hashlib.sha512
        ).hexdigest()
        headers = {
            "X-ONRAMP-APIKEY": kyc_settings.ONRAMP_API_KEY,
            "X-ONRAMP-PAYLOAD": payload,
            "X-ONRAMP-SIGNATURE": signature,
        }
        data = _send("POST", f"{self.base_url}{path}", json=body, headers=headers)
        return data.get("data") or {}

    def _parse(self, data: dict) -> ProviderCase:
        status = self.STATUSES.get(str(data.get("kycStatus")))
        if status is None:
            raise ProviderError(f"Onramp returned an unknown status {data.get('kycStatus')!r}")
        return ProviderCase(
            external_id=str(data["kycId"]), status=status, reasons=tuple(data.get("reasons") or ())
        )

    def submit(self, case, content: bytes, callback_url: str) -> ProviderCase:
        body = {
            "reference": case.reference,
            "user_id": case.user_id,
            "document_type": case.document_type,
            "file_name": case.document_name,
            "file_base64": base64.b64encode(content).decode(),
            "callback_url": callback_url,
        }
        return self._parse(self._post("/v1/kyc/documents", body))

    def status(self, external_id: str) -> ProviderCase:
        return self._parse(self._post("/v1/kyc/status", {"kycId": external_id}))

    def verify_callback(self, headers, raw_body: bytes) -> KycCallback:
        payload = headers.get("X-ONRAMP-PAYLOAD", "")
        signature = headers.get("X-ONRAMP-SIGNATURE", "")
        if not payload or not signature:
            raise CallbackRejected("missing X-ONRAMP-PAYLOAD / X-ONRAMP-SIGNATURE")
        expected = hmac.new(
            kyc_settings.ONRAMP_API_SECRET.encode(), payload.encode(), hashlib.sha512
        ).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise CallbackRejected("signature does not match")
        try:
            decoded = json.loads(base64.b64decode(payload, validate=True))
            timestamp_ms = int(decoded["timestamp"])
            event = decoded["body"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise CallbackRejected("malformed X-ONRAMP-PAYLOAD", 400) from None
        if abs(time.time() - timestamp_ms / 1000) > _tolerance():
            raise CallbackRejected("stale callback: timestamp outside the tolerance", 400)
        # The signed payload is what counts; the raw body must be that same event.
        try:
            if json.loads(raw_body) != event:
                raise CallbackRejected("the body is not the signed event", 401)
            return KycCallback(event_id=str(event["eventId"]), external_id=str(event["kycId"]))
        except (ValueError, KeyError, TypeError):
            raise CallbackRejected("callback body is not an Onramp KYC event", 400) from None


PROVIDERS = {"dtr": DtrKyc, "onramp": OnrampKyc}


def get_provider(name: str):
    try:
        return PROVIDERS[name]()
    except KeyError:
        raise ProviderRejected(f"unknown KYC provider {name!r}") from None
