"""What can be done with webhooks. The admin, the API, the command line and the tasks call
these; nobody edits a delivery's status by hand."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
import socket
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import httpx
from django.db import transaction
from django.utils import timezone

import taskhub
from taskhub.conf import taskhub_settings
from taskhub.console.services import cancel_task, live_task, live_task_ids
from taskhub.definitions.payloads import encode_json
from taskhub.errors import InvalidTaskRequest, InvalidTransition, TaskhubError
from taskhub.safety.net import UnsupportedScheme, check_url, is_blocked, port_allowed

from .conf import webhooks_settings
from .models import (
    OPEN_STATUSES,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from .signing import InvalidSecret, generate_secret, secret_key

logger = logging.getLogger(__name__)
DELIVER_TASK = "webhooks.deliver"
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
_PATTERN = re.compile(r"^(\*|[A-Za-z0-9_\-]+(\.([A-Za-z0-9_\-]+|\*))*)$")


class InvalidWebhook(InvalidTaskRequest):
    """A webhook request was refused (bad URL, event type, payload or secret); nothing stored."""


class EndpointNotFound(TaskhubError, LookupError):
    pass


class DeliveryNotFound(TaskhubError, LookupError):
    pass


# -- endpoints ------------------------------------------------------------------------------------


def private_targets_allowed() -> bool:
    own = webhooks_settings.ALLOW_PRIVATE_TARGETS
    return bool(taskhub_settings.ALLOW_PRIVATE_TARGETS if own is None else own)


def _check_endpoint_url(url: str) -> str:
    """Refuse what can be refused when saving; the delivery checks the connected address again
    (a name may resolve elsewhere later — DNS rebinding)."""
    try:
        check_url(url)
        parsed = httpx.URL(url)
    except (UnsupportedScheme, httpx.InvalidURL) as exc:
        raise InvalidWebhook(str(exc), field="url") from None
    if not parsed.host:
        raise InvalidWebhook("the URL has no host", field="url")
    if private_targets_allowed():
        return url
    try:
        addresses = [ipaddress.ip_address(parsed.host).compressed]
    except ValueError:
        try:
            addresses = [i[4][0] for i in socket.getaddrinfo(parsed.host, None)]
        except OSError:
            addresses = []  # not resolvable yet; refused at delivery if it resolves privately
    if any(is_blocked(a) for a in addresses):
        raise InvalidWebhook(f"{parsed.host} is a private or reserved address", field="url")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not port_allowed(port):
        raise InvalidWebhook(f"port {port} is not an allowed port (ALLOWED_PORTS)", field="url")
    return url


def _check_event_types(event_types: Iterable[str]) -> list[str]:
    types = [t.strip() for t in event_types if t and t.strip()]
    if not types:
        raise InvalidWebhook("subscribe to at least one event type", field="event_types")
    bad = [t for t in types if not _PATTERN.match(t)]
    if bad:
        raise InvalidWebhook(f"bad event type pattern {bad[0]!r}", field="event_types")
    return types


def _check_secret(secret: str) -> str:
    try:
        secret_key(secret)
    except InvalidSecret as exc:
        raise InvalidWebhook(str(exc), field="secret") from None
    return secret


def notify_endpoints_changed() -> None:
    from .events import endpoints_changed

    transaction.on_commit(endpoints_changed)


def get_endpoint(endpoint_id: str | uuid.UUID) -> WebhookEndpoint:
    try:
        return WebhookEndpoint.objects.get(id=uuid.UUID(str(endpoint_id)))
    except (ValueError, WebhookEndpoint.DoesNotExist):
        raise EndpointNotFound(f"no webhook endpoint with id {endpoint_id!r}") from None


def create_endpoint(
    url: str,
    event_types: Sequence[str],
    *,
    secret: str | None = None,
    description: str = "",
    active: bool = True,
) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint; returns it with its secret — the only time the secret is shown."""
    secret = _check_secret(secret) if secret else generate_secret()
    now = timezone.now()
    endpoint = WebhookEndpoint.objects.create(
        url=_check_endpoint_url(url),
        secret=secret,
        event_types=_check_event_types(event_types),
        description=description,
        active=active,
        created_at=now,
        updated_at=now,
    )
    notify_endpoints_changed()
    return endpoint, secret


def update_endpoint(endpoint_id: str | uuid.UUID, **changes: Any) -> WebhookEndpoint:
    """Change url, event_types, description or active. (Secrets change through rotate_secret.)"""
    allowed = {"url", "event_types", "description", "active"}
    if set(changes) - allowed:
        raise InvalidWebhook(f"cannot change {', '.join(sorted(set(changes) - allowed))}")
    endpoint = get_endpoint(endpoint_id)
    if "url" in changes:
        endpoint.url = _check_endpoint_url(changes["url"])
    if "event_types" in changes:
        endpoint.event_types = _check_event_types(changes["event_types"])
    if "description" in changes:
        endpoint.description = changes["description"]
    if "active" in changes:
        endpoint.active = bool(changes["active"])
        endpoint.disabled_reason = "" if endpoint.active else "disabled by an operator"
    endpoint.updated_at = timezone.now()
    endpoint.save()
    notify_endpoints_changed()
    return endpoint


def enable_endpoint(endpoint_id: str | uuid.UUID) -> WebhookEndpoint:
    return update_endpoint(endpoint_id, active=True)


def disable_endpoint(endpoint_id: str | uuid.UUID) -> WebhookEndpoint:
    return update_endpoint(endpoint_id, active=False)


def delete_endpoint(endpoint_id: str | uuid.UUID) -> None:
    """Delete an endpoint with its deliveries; attempts already scheduled find nothing to do."""
    get_endpoint(endpoint_id).delete()
    notify_endpoints_changed()


def rotate_secret(
    endpoint_id: str | uuid.UUID, new_secret: str | None = None, overlap_hours: float | None = None
) -> str:
    """Give the endpoint a new secret; the old one keeps signing beside it for ``overlap_hours``
    so receivers can switch without dropping a message. Returns the new secret."""
    endpoint = get_endpoint(endpoint_id)
    hours = webhooks_settings.ROTATION_OVERLAP_HOURS if overlap_hours is None else overlap_hours
    secret = _check_secret(new_secret) if new_secret else generate_secret()
    now = timezone.now()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + dt.timedelta(hours=hours)
    endpoint.secret, endpoint.updated_at = secret, now
    endpoint.save()
    return secret


def signing_secrets(endpoint: WebhookEndpoint, now: dt.datetime | None = None) -> list[str]:
    """The secrets that sign a request now: the current one, and the previous during rotation."""
    now = now or timezone.now()
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


# -- publishing -----------------------------------------------------------------------------------


def publish(
    event_type: str, payload: dict[str, Any], *, endpoints: Sequence[WebhookEndpoint] | None = None
) -> list[WebhookDelivery]:
    """Owe ``event_type`` to every active endpoint subscribed to it: one delivery each, its
    first attempt a task on the ``webhooks`` queue. Inside a transaction nothing is sent unless
    it commits. InvalidWebhook (nothing stored) for a bad event type or payload."""
    return publish_many([(event_type, payload)], endpoints=endpoints)


def publish_many(
    events: Sequence[tuple[str, dict[str, Any]]],
    *,
    endpoints: Sequence[WebhookEndpoint] | None = None,
) -> list[WebhookDelivery]:
    """Publish several events in one transaction."""
    for event_type, payload in events:
        if not isinstance(event_type, str) or len(event_type) > 100:
            raise InvalidWebhook("an event type is 1 to 100 characters", field="event_type")
        if not _EVENT_TYPE.match(event_type):
            raise InvalidWebhook(f"bad event type {event_type!r}", field="event_type")
        if not isinstance(payload, dict):
            raise InvalidWebhook("the payload must be a JSON object", field="payload")
        encode_json(payload, what="payload")
    if endpoints is None:
        endpoints = list(WebhookEndpoint.objects.filter(active=True))
    now = timezone.now()
    deliveries = []
    for event_type, payload in events:
        message_id = f"msg_{uuid.uuid4().hex}"
        deliveries += [
            WebhookDelivery(
                endpoint=e,
                message_id=message_id,
                event_type=event_type,
                payload=payload,
                created_at=now,
                updated_at=now,
                next_attempt_at=now,
            )
            for e in endpoints
            if e.active and e.subscribes_to(event_type)
        ]
    if not deliveries:
        return []
    with transaction.atomic():
        WebhookDelivery.objects.bulk_create(deliveries)
        for delivery in deliveries:
            schedule_attempt(delivery, 1)
    return deliveries


def schedule_attempt(
    delivery: WebhookDelivery, number: int, at: dt.datetime | None = None
) -> taskhub.models.Task:
    """Schedule attempt ``number`` of a delivery (in the caller's transaction). The dedup key
    makes a second request for the same attempt return the first task."""
    task = taskhub.schedule(
        DELIVER_TASK,
        {"delivery_id": str(delivery.id), "attempt": number},
        eta=at,
        dedup_key=f"webhook:{delivery.id}:{number}",
        correlation_id=delivery.message_id,
        timeout=webhooks_settings.TIMEOUT + 30,
    )
    delivery.task_id, delivery.next_attempt_at = task.id, at or timezone.now()
    WebhookDelivery.objects.filter(id=delivery.id).update(
        task_id=task.id, next_attempt_at=delivery.next_attempt_at
    )
    return task


# -- operator actions on deliveries ---------------------------------------------------------------


def get_delivery(delivery_id: str | uuid.UUID) -> WebhookDelivery:
    try:
        return WebhookDelivery.objects.select_related("endpoint").get(
            id=uuid.UUID(str(delivery_id))
        )
    except (ValueError, WebhookDelivery.DoesNotExist):
        raise DeliveryNotFound(f"no webhook delivery with id {delivery_id!r}") from None


def _live_task(delivery: WebhookDelivery) -> taskhub.models.Task | None:
    return live_task(delivery.task_id)


def redeliver(delivery_id: str | uuid.UUID) -> WebhookDelivery:
    """Send a delivery again now, whatever became of it, with a fresh retry schedule. The
    ``webhook-id`` stays the same, so a receiver that already has it can tell."""
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(id=get_delivery(delivery_id).id)
        if not delivery.endpoint.active:
            raise InvalidTransition("the endpoint is disabled; enable it first")
        live = _live_task(delivery)
        if live is not None and live.status == taskhub.TaskStatus.RUNNING:
            return delivery  # an attempt is being made right now
        if live is not None:
            cancel_task(live.id, actor="webhooks.redeliver")  # the waiting retry is superseded
        delivery.status, delivery.retries_from = DeliveryStatus.PENDING, delivery.attempts
        delivery.updated_at = timezone.now()
        delivery.save(update_fields=["status", "retries_from", "updated_at"])
        schedule_attempt(delivery, delivery.attempts + 1)
    return delivery


def retry_all_failed() -> int:
    """Redeliver every failed or permanently failed delivery of an active endpoint now."""
    ids = WebhookDelivery.objects.filter(
        status__in=(DeliveryStatus.FAILED, DeliveryStatus.PERMANENTLY_FAILED),
        endpoint__active=True,
    ).values_list("id", flat=True)
    count = 0
    for delivery_id in list(ids):
        redeliver(delivery_id)
        count += 1
    return count


def retry_due_deliveries(slack: float = 60.0, limit: int = 1000) -> int:
    """The safety net behind each attempt's own follow-up task: an open delivery whose attempt
    is overdue but has no live task (the task was cancelled, its queue cleared …) is sent again."""
    cutoff = timezone.now() - dt.timedelta(seconds=slack)
    overdue = list(
        WebhookDelivery.objects.filter(
            status__in=OPEN_STATUSES, next_attempt_at__lte=cutoff, endpoint__active=True
        ).order_by("next_attempt_at")[:limit]
    )
    live = live_task_ids([d.task_id for d in overdue if d.task_id])
    count = 0
    for delivery in overdue:
        if delivery.task_id in live:
            continue
        with transaction.atomic():
            schedule_attempt(delivery, delivery.attempts + 1)
        count += 1
    if count:
        logger.info("rescheduled %d overdue webhook deliveries", count)
    return count


def cleanup_deliveries(older_than_days: float | None = None, batch: int = 1000) -> int:
    """Delete finished deliveries (with their attempts) created before the retention cutoff.
    Deliveries still owed an attempt are kept whatever their age."""
    days = webhooks_settings.CLEANUP_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - dt.timedelta(days=days)
    total = 0
    while True:
        ids = list(
            WebhookDelivery.objects.filter(created_at__lt=cutoff)
            .exclude(status__in=OPEN_STATUSES)
            .values_list("id", flat=True)[:batch]
        )
        if not ids:
            break
        with transaction.atomic():
            WebhookDelivery.objects.filter(id__in=ids).delete()
        total += len(ids)
    logger.info("deleted %d webhook deliveries older than %s", total, cutoff.isoformat())
    return total
