"""One delivery attempt: sign, POST through the SSRF guard, record what happened, and decide
what comes next — success, a retry at the scheduled (or Retry-After) time, or the end.

What each answer means:
- 2xx: delivered.
- 410 Gone: the receiver wants no more; the endpoint is disabled.
- 408, 429, 5xx, 3xx (redirects are never followed), timeouts, connection errors: retried on the
  schedule (WEBHOOKS["RETRY_SCHEDULE"]); a Retry-After header can only make the wait longer.
- any other 4xx, a refused (private) address, a non-http(s) URL: permanently failed.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from dataclasses import dataclass, replace

import httpx
from django.db import transaction
from django.utils import timezone

from taskhub.safety.net import BlockedAddress, UnsupportedScheme, check_url, guarded_client
from taskhub.safety.storable import storable_text

from .conf import webhooks_settings
from .models import DeliveryAttempt, DeliveryStatus, WebhookDelivery, WebhookEndpoint
from .signing import signature_headers

BODY_EXCERPT = 4096
RETRY, PERMANENT, GONE, SUCCESS = "retry", "permanent", "gone", "success"


@dataclass
class Response:
    code: int | None = None
    body: str = ""
    error: str = ""
    retry_after: float | None = None
    duration: float = 0.0
    refused: bool = False  # never retried: the address or URL will not become acceptable


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = (email.utils.parsedate_to_datetime(value) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(0.0, min(seconds, float(webhooks_settings.MAX_RETRY_AFTER)))


def send(url: str, body: bytes, headers: dict[str, str], allow_private: bool | None) -> Response:
    """POST once; never raises for a network problem — it is part of the Response."""
    started = time.monotonic()
    result = Response()
    try:
        check_url(url)
        with guarded_client(timeout=webhooks_settings.TIMEOUT, allow_private=allow_private) as c:
            with c.stream("POST", url, content=body, headers=headers) as response:
                excerpt = b""
                for chunk in response.iter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= BODY_EXCERPT:
                        break
            result.code = response.status_code
            result.body = excerpt[:BODY_EXCERPT].decode("utf-8", errors="replace")
            result.retry_after = parse_retry_after(
                response.headers.get("retry-after"), timezone.now()
            )
    except (BlockedAddress, UnsupportedScheme) as exc:
        result.error, result.refused = f"refused: {exc}", True
    except httpx.TimeoutException:
        result.error = f"timed out after {webhooks_settings.TIMEOUT:g}s"
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.duration = time.monotonic() - started
    return result


def classify(response: Response) -> str:
    if response.refused:
        return PERMANENT
    if response.code is None:
        return RETRY  # timeout or connection error
    if 200 <= response.code < 300:
        return SUCCESS
    if response.code == 410:
        return GONE
    if response.code in (408, 429) or response.code >= 500 or 300 <= response.code < 400:
        return RETRY
    return PERMANENT


def retry_delay(delivery: WebhookDelivery, number: int, response: Response) -> float | None:
    """Seconds until the next attempt after failed attempt ``number``; None when out of retries."""
    schedule = list(webhooks_settings.RETRY_SCHEDULE)
    index = number - delivery.retries_from - 1
    if index >= len(schedule):
        return None
    return max(float(schedule[index]), response.retry_after or 0.0)


def attempt_delivery(
    delivery_id: str, number: int, *, task_id: str | None = None, allow_private: bool | None = None
) -> dict:
    """Make attempt ``number`` of a delivery and record it; returns a summary for the task
    result. A duplicate (the attempt was already made, or the delivery succeeded) does nothing."""
    from .services import private_targets_allowed, signing_secrets

    delivery = WebhookDelivery.objects.select_related("endpoint").filter(id=delivery_id).first()
    if delivery is None:
        return {"skipped": "the delivery no longer exists"}
    finished = (DeliveryStatus.SUCCEEDED, DeliveryStatus.PERMANENTLY_FAILED)
    if delivery.status in finished or delivery.attempts >= number:
        return {"skipped": f"attempt {number} is not due", "status": delivery.status}
    endpoint = delivery.endpoint
    body = delivery.body()
    headers = {
        "content-type": "application/json",
        "user-agent": webhooks_settings.USER_AGENT,
        **signature_headers(signing_secrets(endpoint), delivery.message_id, body),
    }
    allow = private_targets_allowed() if allow_private is None else allow_private
    if endpoint.active:
        response = send(endpoint.url, body, headers, allow)
    else:
        response = Response(error=f"endpoint disabled: {endpoint.disabled_reason}", refused=True)
    return _record(delivery.id, number, endpoint, headers, response, task_id)


def _record(delivery_id, number, endpoint: WebhookEndpoint, headers, response, task_id) -> dict:
    from .services import notify_endpoints_changed, schedule_attempt

    now = timezone.now()
    verdict = classify(response)
    # The receiver chose the body (and partly the error text): a NUL in it would make this
    # record fail after the request was sent, and the retried task would send it again.
    response = replace(
        response, body=storable_text(response.body), error=storable_text(response.error)
    )
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(id=delivery_id)
        if delivery.attempts >= number:
            return {"skipped": f"attempt {number} was recorded concurrently"}
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            at=now,
            url=endpoint.url,
            request_headers=headers,
            response_code=response.code,
            response_body=response.body,
            duration=response.duration,
            error=response.error,
            task_id=task_id,
        )
        delivery.attempts, delivery.updated_at = number, now
        delivery.last_response_code, delivery.last_error = response.code, response.error
        delivery.next_attempt_at = None
        if verdict == SUCCESS:
            delivery.status, delivery.delivered_at = DeliveryStatus.SUCCEEDED, now
        elif verdict == RETRY and (delay := retry_delay(delivery, number, response)) is not None:
            delivery.status = DeliveryStatus.FAILED
            schedule_attempt(delivery, number + 1, now + dt.timedelta(seconds=delay))
        else:
            delivery.status = DeliveryStatus.PERMANENTLY_FAILED
            if verdict == GONE:
                WebhookEndpoint.objects.filter(id=endpoint.id).update(
                    active=False,
                    disabled_reason=f"answered 410 Gone at {now.isoformat()}",
                    updated_at=now,
                )
                notify_endpoints_changed()
        delivery.save()
    return {
        "status": delivery.status,
        "attempt": number,
        "response_code": response.code,
        "error": response.error or None,
        "next_attempt_at": delivery.next_attempt_at.isoformat()
        if delivery.next_attempt_at
        else None,
    }
