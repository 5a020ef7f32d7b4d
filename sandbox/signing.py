"""The providers' signature schemes, as the sandbox checks and produces them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time


def dtr_request_signature(secret: str, timestamp: str, method: str, path: str, body: bytes):
    message = f"{timestamp}.{method.upper()}.{path}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def dtr_callback_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def onramp_payload(body: dict, timestamp_ms: int | None = None) -> str:
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    text = json.dumps({"timestamp": ts, "body": body}, separators=(",", ":"))
    return base64.b64encode(text.encode()).decode()


def onramp_signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha512).hexdigest()
