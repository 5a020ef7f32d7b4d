"""``notifications.deliver`` (one notification, channel by channel) and
``notifications.operator_alert`` (the throttled alert about dead-lettered tasks)."""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from taskhub import PermanentError, TaskType, schedule, task
from taskhub.builtins.mail import available_templates
from taskhub.definitions.retry import Exponential

from . import alerts, signals
from .models import Channel, DeliveryStatus, Notification
from .services import create_notification, email_address_for


class DeliverNotification(BaseModel):
    """Either ``notificationId`` (rows made by ``notify_user``) or the notification itself
    (``POST /api/task-queue/notification``): the row is then created by the task, once."""

    model_config = ConfigDict(populate_by_name=True)

    notification_id: int | None = Field(default=None, alias="notificationId")
    user_id: str | None = Field(default=None, alias="userId", max_length=200)
    type: str | None = Field(default=None, max_length=100)
    message: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    channels: list[Channel] | None = None

    @model_validator(mode="before")
    @classmethod
    def user_id_as_text(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("userId", "user_id"):
                if isinstance(data.get(key), int):
                    data = {**data, key: str(data[key])}
        return data

    @model_validator(mode="after")
    def row_or_content(self) -> DeliverNotification:
        if self.notification_id is not None:
            return self
        # Field-level errors, so an API client sees which of userId, type, message is missing.
        missing = [
            alias
            for alias, value in (
                ("userId", self.user_id),
                ("type", self.type),
                ("message", self.message),
            )
            if not value
        ]
        if missing:
            raise ValidationError.from_exception_data(
                "DeliverNotification",
                [{"type": "missing", "loc": (name,), "input": None} for name in missing],
            )
        return self


class ChannelsFailed(Exception):
    """Some channels failed; they alone are retried."""


def _email_template(notification: Notification) -> tuple[str, dict]:
    meta = notification.metadata
    candidates = [meta.get("template"), re.sub(r"[^a-z0-9_\-]", "_", notification.type.lower())]
    for name in candidates:
        if name and re.fullmatch(r"[a-z0-9][a-z0-9_\-]*", name) and available_templates(name):
            return name, {**meta, "message": notification.message}
    return "notification", {"message": notification.message, **meta}


def _send_email(notification: Notification) -> tuple[str, str]:
    """(status, reference): schedule email.send in the caller's transaction."""
    # A caller that knows the address for this message (e.g. the one a KYC case was opened
    # with) passes it in metadata; otherwise the user's preference or account decides.
    address = notification.metadata.get("email") or email_address_for(
        notification.user_id, notification.type
    )
    if not address:
        return DeliveryStatus.SKIPPED, "no e-mail address known for this user"
    template, context = _email_template(notification)
    subject = str(
        notification.metadata.get("subject")
        or notification.type.replace("_", " ").replace(".", " ").capitalize()
    )
    email = schedule(
        "email.send",
        {"to": [address], "subject": subject, "template": template, "context": context},
        user_id=notification.user_id,
        correlation_id=f"notification-{notification.pk}",
    )
    return DeliveryStatus.SENT, str(email.id)


def _publish_webhook(notification: Notification) -> tuple[str, str]:
    event = {"type": "notification.created", "data": serialize(notification)}
    signals.notification_created.send(sender=Notification, notification=notification, event=event)
    return DeliveryStatus.SENT, ""


def serialize(notification: Notification) -> dict:
    return {
        "id": notification.pk,
        "user_id": notification.user_id,
        "type": notification.type,
        "message": notification.message,
        "metadata": notification.metadata,
        "channels": notification.channels,
        "created_at": notification.created_at.isoformat(),
    }


_SENDERS = {
    Channel.IN_APP: lambda n: (DeliveryStatus.SENT, ""),
    Channel.EMAIL: _send_email,
    Channel.WEBHOOK: _publish_webhook,
}


def _record(pk: int, channel: str, status: str, *, ref: str = "", error: str = "") -> None:
    row = Notification.objects.select_for_update().get(pk=pk)
    state = dict(row.deliveries.get(channel) or {})
    state.update(
        status=status,
        attempts=state.get("attempts", 0) + 1,
        error=error,
        at=timezone.now().isoformat(),
    )
    if ref:
        state["ref"] = ref
    row.deliveries = {**row.deliveries, channel: state}
    row.save(update_fields=["deliveries"])


def deliver_channel(notification: Notification, channel: str, *, last_attempt: bool) -> str:
    """Deliver one channel; its side effects and its new state commit together."""
    try:
        with transaction.atomic():
            status, ref = _SENDERS[channel](notification)
            _record(notification.pk, channel, status, ref=ref)
        return status
    except Exception as exc:
        status = DeliveryStatus.FAILED if last_attempt else DeliveryStatus.PENDING
        with transaction.atomic():
            _record(notification.pk, channel, status, error=f"{type(exc).__name__}: {exc}")
        return status


def _load(payload: DeliverNotification, ctx) -> Notification:
    if payload.notification_id is not None:
        try:
            return Notification.objects.get(pk=payload.notification_id)
        except Notification.DoesNotExist:
            raise PermanentError(f"no notification {payload.notification_id}") from None
    existing = Notification.objects.filter(source_task_id=ctx.task_id).first()
    if existing is not None:
        return existing
    return create_notification(
        payload.user_id,
        payload.type,
        payload.message,
        payload.metadata,
        payload.channels,
        source_task_id=ctx.task_id,
    )


@task(
    "notifications.deliver",
    queue="notifications",
    type=TaskType.NOTIFICATION_DELIVERY,
    schema=DeliverNotification,
    max_attempts=6,
    retry=Exponential(base=2, cap=600),
    timeout=60,
)
def deliver(payload: DeliverNotification, ctx) -> dict:
    """Deliver a notification on each of its channels not yet delivered; retry only failures."""
    notification = _load(payload, ctx)
    outcome = {}
    for channel in notification.channels:
        if notification.delivery_status(channel) in (DeliveryStatus.SENT, DeliveryStatus.SKIPPED):
            outcome[channel] = notification.delivery_status(channel)
            continue
        outcome[channel] = deliver_channel(notification, channel, last_attempt=ctx.is_last_attempt)
        ctx.logger.info("channel %s: %s", channel, outcome[channel])
    failed = [c for c, s in outcome.items() if s in (DeliveryStatus.PENDING, DeliveryStatus.FAILED)]
    if failed:
        notification.refresh_from_db()
        errors = "; ".join(f"{c}: {notification.deliveries[c].get('error')}" for c in failed)
        raise ChannelsFailed(f"channels failed: {errors}")
    return {"notification_id": notification.pk, "channels": outcome}


class OperatorAlert(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    task_name: str = Field(alias="taskName")


@task(
    "notifications.operator_alert",
    queue="notifications",
    type=TaskType.NOTIFICATION_DELIVERY,
    schema=OperatorAlert,
    max_attempts=5,
    retry=Exponential(base=2, cap=300),
)
def operator_alert(payload: OperatorAlert, ctx) -> dict:
    """One alert for every failure of a task type counted since the last alert."""
    return alerts.send_alert(payload.task_name)
