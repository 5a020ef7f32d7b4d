"""Onramp Money's KYC document API, with its signed-request and signed-webhook scheme:
``X-ONRAMP-APIKEY``, ``X-ONRAMP-PAYLOAD`` = base64(JSON {timestamp (ms), body}) and
``X-ONRAMP-SIGNATURE`` = hex HMAC-SHA512(api secret, payload). Statuses IN_REVIEW, COMPLETED,
REJECTED, MANUAL_REVIEW, EXPIRED. Documents are judged as in ``documents.py``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import threading
import time
import uuid

from .documents import decide
from .server import Callback, Config, HttpError, Outbox, Request
from .signing import onramp_payload, onramp_signature

STATUS = {
    "approved": "COMPLETED",
    "rejected": "REJECTED",
    "needs_review": "MANUAL_REVIEW",
    "expired": "EXPIRED",
}
TOLERANCE_MS = 300_000


def _signed_body(config: Config, request: Request) -> dict:
    headers = {k.lower(): v for k, v in request.headers.items()}
    if headers.get("x-onramp-apikey") != config.onramp_api_key:
        raise HttpError(401, "unknown API key")
    payload = headers.get("x-onramp-payload", "")
    expected = onramp_signature(config.onramp_api_secret, payload)
    if not payload or not hmac.compare_digest(expected, headers.get("x-onramp-signature", "")):
        raise HttpError(401, "bad X-ONRAMP-SIGNATURE")
    try:
        decoded = json.loads(base64.b64decode(payload))
    except (ValueError, binascii.Error):
        raise HttpError(400, "bad X-ONRAMP-PAYLOAD") from None
    if abs(time.time() * 1000 - int(decoded.get("timestamp", 0))) > TOLERANCE_MS:
        raise HttpError(401, "stale request")
    if decoded.get("body") != request.json():
        raise HttpError(401, "the body is not the signed one")
    return decoded["body"]


class OnrampState:
    def __init__(self, config: Config, outbox: Outbox):
        self.config, self.outbox = config, outbox
        self.lock = threading.Lock()
        self.cases: dict[str, dict] = {}
        self.by_reference: dict[str, str] = {}

    def _public(self, case: dict) -> dict:
        return {"kycId": case["kycId"], "kycStatus": case["kycStatus"], "reasons": case["reasons"]}

    def submit(self, request: Request):
        body = _signed_body(self.config, request)
        for name in ("reference", "document_type", "file_name", "file_base64", "callback_url"):
            if not body.get(name):
                raise HttpError(400, f"{name} is required")
        try:
            content = base64.b64decode(body["file_base64"], validate=True)
        except (ValueError, binascii.Error):
            raise HttpError(400, "file_base64 is not base64") from None
        with self.lock:
            existing = self.by_reference.get(body["reference"])
            if existing:
                return 200, {"status": 1, "data": self._public(self.cases[existing])}
            case = {
                "kycId": f"onr_{uuid.uuid4().hex[:16]}",
                "kycStatus": "IN_REVIEW",
                "reasons": [],
                "callback_url": body["callback_url"],
            }
            self.cases[case["kycId"]] = case
            self.by_reference[body["reference"]] = case["kycId"]
        verdict, reasons = decide(body["file_name"], content)

        def decided():
            with self.lock:
                case.update(kycStatus=STATUS[verdict], reasons=reasons)
            event = {
                "eventId": f"onr_evt_{uuid.uuid4().hex}",
                "kycId": case["kycId"],
                "kycStatus": case["kycStatus"],
                "createdAt": int(time.time() * 1000),
            }
            payload = onramp_payload(event)
            headers = {
                "X-ONRAMP-PAYLOAD": payload,
                "X-ONRAMP-SIGNATURE": onramp_signature(self.config.onramp_api_secret, payload),
            }
            body_bytes = json.dumps(event, separators=(",", ":")).encode()
            return Callback(
                url=case["callback_url"], body=body_bytes, headers=headers, kind="kyc.updated"
            )

        self.outbox.later(self.config.callback_delay, decided)
        return 201, {"status": 1, "data": self._public(case)}

    def status(self, request: Request):
        body = _signed_body(self.config, request)
        case = self.cases.get(str(body.get("kycId")))
        if case is None:
            raise HttpError(404, "no such KYC case")
        return 200, {"status": 1, "data": self._public(case)}


def routes(config: Config, outbox: Outbox):
    state = OnrampState(config, outbox)
    return [
        ("POST", re.compile(r"/onramp/v1/kyc/documents"), state.submit),
        ("POST", re.compile(r"/onramp/v1/kyc/status"), state.status),
    ]
