"""The DTR provider: payments and KYC documents (the contract is in payments/providers.py and
docs/payments.md). Payment decisions by the amount's last two digits:

* ``.13`` → declined at once;
* ``.42`` → processing; completes later, and only the callback says so;
* ``.77`` → processing; completes later with no callback (only reconciliation finds out);
* anything else → completed at once.

Every status change is also sent as a signed callback (except for ``.77``). A completed payment
can be refunded in full (``POST /v1/payments/{id}/refunds``, with an Idempotency-Key): it moves
to ``refunded`` and a callback says so; asking again returns the same refund.
"""

from __future__ import annotations

import email.parser
import email.policy
import hmac
import json
import re
import threading
import time
import uuid
from decimal import Decimal

from .documents import decide
from .server import Callback, Config, HttpError, Outbox, Request
from .signing import dtr_callback_header, dtr_request_signature

TOLERANCE = 300


def _check_signature(config: Config, request: Request) -> None:
    headers = {k.lower(): v for k, v in request.headers.items()}
    if headers.get("x-dtr-key") != config.dtr_api_key:
        raise HttpError(401, "unknown API key")
    timestamp = headers.get("x-dtr-timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE:
        raise HttpError(401, "missing or stale X-DTR-Timestamp")
    expected = dtr_request_signature(
        config.dtr_api_secret, timestamp, request.method, request.path, request.body
    )
    if not hmac.compare_digest(expected, headers.get("x-dtr-signature", "")):
        raise HttpError(401, "bad X-DTR-Signature")


class DtrState:
    def __init__(self, config: Config, outbox: Outbox):
        self.config, self.outbox = config, outbox
        self.lock = threading.Lock()
        self.payments: dict[str, dict] = {}
        self.by_key: dict[str, str] = {}
        self.documents: dict[str, dict] = {}
        self.documents_by_reference: dict[str, str] = {}

    def _callback(self, url: str, kind: str, data: dict) -> Callback:
        body = json.dumps(
            {
                "id": f"evt_{uuid.uuid4().hex}",
                "type": kind,
                "created_at": int(time.time()),
                "data": data,
            },
            separators=(",", ":"),
        ).encode()
        header = dtr_callback_header(self.config.dtr_webhook_secret, body)
        return Callback(url=url, body=body, headers={"X-DTR-Signature": header}, kind=kind)

    def notify_payment(self, payment: dict, delay: float = 0.0) -> None:
        data = {"payment_id": payment["id"], "status": payment["status"]}
        self.outbox.later(
            delay, lambda: self._callback(payment["callback_url"], "payment.updated", data)
        )

    # --- payments ---------------------------------------------------------------------------

    def create_payment(self, request: Request):
        _check_signature(self.config, request)
        key = request.headers.get("Idempotency-Key") or request.headers.get("idempotency-key")
        if not key:
            raise HttpError(400, "Idempotency-Key header is required")
        body = request.json()
        for name in ("reference", "amount", "currency", "payment_method_id", "callback_url"):
            if not body.get(name):
                raise HttpError(400, f"{name} is required")
        with self.lock:
            if key in self.by_key:
                return 200, self.payments[self.by_key[key]]
            cents = Decimal(str(body["amount"])).quantize(Decimal("0.01")) % 1
            payment = {
                "id": f"dtr_pay_{uuid.uuid4().hex[:16]}",
                "reference": body["reference"],
                "user_id": body.get("user_id"),
                "amount": body["amount"],
                "currency": body["currency"],
                "payment_method_id": body["payment_method_id"],
                "callback_url": body["callback_url"],
                "status": "completed",
                "reason": "",
                "created_at": int(time.time()),
                "updated_at": int(time.time()),
            }
            if cents == Decimal("0.13"):
                payment.update(status="declined", reason="declined by the sandbox (.13)")
            elif cents in (Decimal("0.42"), Decimal("0.77")):
                payment["status"] = "processing"
            self.payments[payment["id"]] = payment
            self.by_key[key] = payment["id"]
        if payment["status"] != "processing":
            self.notify_payment(payment)
        else:
            self.outbox.later(
                self.config.callback_delay,
                lambda: self._complete_later(payment, cents == Decimal("0.42")),
            )
        return 201, self._public(payment)

    def _complete_later(self, payment: dict, with_callback: bool):
        with self.lock:
            payment.update(status="completed", updated_at=int(time.time()))
        if with_callback:
            data = {"payment_id": payment["id"], "status": payment["status"]}
            return self._callback(payment["callback_url"], "payment.updated", data)
        return None

    def refund_payment(self, request: Request):
        _check_signature(self.config, request)
        key = request.headers.get("Idempotency-Key") or request.headers.get("idempotency-key")
        if not key:
            raise HttpError(400, "Idempotency-Key header is required")
        body = request.json()
        with self.lock:
            payment = self.payments.get(request.match["id"])
            if payment is None:
                raise HttpError(404, "no such payment")
            refund = payment.get("refund")
            if refund is not None:
                refund["requests"] += 1
                return 200, refund
            if payment["status"] != "completed":
                raise HttpError(409, f"payment is {payment['status']}; only completed ones refund")
            refund = {
                "id": f"dtr_ref_{uuid.uuid4().hex[:16]}",
                "payment_id": payment["id"],
                "amount": payment["amount"],
                "currency": payment["currency"],
                "reason": str(body.get("reason") or "")[:200],
                "status": "refunded",
                "idempotency_key": key,
                "created_at": int(time.time()),
                "requests": 1,
            }
            payment.update(status="refunded", refund=refund, updated_at=int(time.time()))
        self.notify_payment(payment)
        return 201, refund

    @staticmethod
    def _public(payment: dict) -> dict:
        return {k: v for k, v in payment.items() if k != "callback_url"}

    def get_payment(self, request: Request):
        _check_signature(self.config, request)
        payment = self.payments.get(request.match["id"])
        if payment is None:
            raise HttpError(404, "no such payment")
        return 200, self._public(payment)

    # --- KYC documents -----------------------------------------------------------------------

    def submit_document(self, request: Request):
        _check_signature(self.config, request)
        fields, files = parse_multipart(request)
        upload = files.get("file")
        if upload is None:
            raise HttpError(400, "file is required")
        for name in ("reference", "document_type", "callback_url"):
            if not fields.get(name):
                raise HttpError(400, f"{name} is required")
        with self.lock:
            existing = self.documents_by_reference.get(fields["reference"])
            if existing:
                return 200, self._public(self.documents[existing])
            document = {
                "id": f"dtr_kyc_{uuid.uuid4().hex[:16]}",
                "reference": fields["reference"],
                "user_id": fields.get("user_id"),
                "document_type": fields["document_type"],
                "status": "in_review",
                "reasons": [],
                "callback_url": fields["callback_url"],
            }
            self.documents[document["id"]] = document
            self.documents_by_reference[fields["reference"]] = document["id"]
        verdict = decide(upload[0], upload[1])

        def decided():
            with self.lock:
                document.update(status=verdict[0], reasons=verdict[1])
            data = {"document_id": document["id"], "status": document["status"]}
            return self._callback(document["callback_url"], "kyc.updated", data)

        self.outbox.later(self.config.callback_delay, decided)
        return 201, self._public(document)

    def get_document(self, request: Request):
        _check_signature(self.config, request)
        document = self.documents.get(request.match["id"])
        if document is None:
            raise HttpError(404, "no such document")
        return 200, self._public(document)


def parse_multipart(request: Request) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    ctype = request.headers.get("Content-Type") or request.headers.get("content-type") or ""
    if not ctype.startswith("multipart/form-data"):
        raise HttpError(400, "expected multipart/form-data")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + request.body
    )
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            files[name] = (part.get_filename(), payload)
        else:
            fields[name] = payload.decode()
    return fields, files


def routes(config: Config, outbox: Outbox):
    state = DtrState(config, outbox)
    return [
        ("POST", re.compile(r"/dtr/v1/payments"), state.create_payment),
        ("GET", re.compile(r"/dtr/v1/payments/(?P<id>[\w-]+)"), state.get_payment),
        ("POST", re.compile(r"/dtr/v1/payments/(?P<id>[\w-]+)/refunds"), state.refund_payment),
        ("POST", re.compile(r"/dtr/v1/kyc/documents"), state.submit_document),
        ("GET", re.compile(r"/dtr/v1/kyc/documents/(?P<id>[\w-]+)"), state.get_document),
    ]
