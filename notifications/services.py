"""The notifications service: ``notify_user`` is what KYC, payments and operators call."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from taskhub import schedule
from taskhub.errors import InvalidTaskRequest

from .conf import notifications_settings
from .models import Channel, DeliveryStatus, Notification, NotificationPreference

DELIVER_TASK = "notifications.deliver"


def preference_for(user_id: str, type: str) -> NotificationPreference | None:
    """The user's preference for this type, else their preference for every type."""
    prefs = {
        p.type: p
        for p in NotificationPreference.objects.filter(user_id=str(user_id), type__in=[type, ""])
    }
    return prefs.get(type) or prefs.get("")


def channels_for(user_id: str, type: str, requested: list[str] | None = None) -> list[str]:
    """Channels to use: the requested ones (or all enabled) that the user has not turned off.

    The in-app channel is always on: the row is the notification."""
    unknown = sorted(set(requested or []) - set(Channel.values))
    if unknown:
        raise InvalidTaskRequest(f"unknown channels: {', '.join(unknown)}", field="channels")
    pref = preference_for(user_id, type)
    enabled = pref.channels if pref else notifications_settings.DEFAULT_CHANNELS
    chosen = requested if requested is not None else enabled
    picked = [c for c in Channel.values if c in chosen and (c in enabled or c == Channel.IN_APP)]
    return [Channel.IN_APP, *[c for c in picked if c != Channel.IN_APP]]


def email_address_for(user_id: str, type: str) -> str:
    """The preference's address, else the Django user's (when user_id is a user's pk)."""
    pref = preference_for(user_id, type)
    if pref and pref.email:
        return pref.email
    User = get_user_model()
    try:
        user = User.objects.filter(pk=user_id).first()
    except (ValueError, TypeError):
        return ""
    return getattr(user, "email", "") or ""


def create_notification(
    user_id: str | int,
    type: str,
    message: str,
    metadata: dict[str, Any] | None = None,
    channels: list[str] | None = None,
    *,
    source_task_id: str | None = None,
) -> Notification:
    chosen = channels_for(str(user_id), type, channels)
    return Notification.objects.create(
        user_id=str(user_id),
        type=type,
        message=message,
        metadata=metadata or {},
        channels=chosen,
        deliveries={c: {"status": DeliveryStatus.PENDING, "attempts": 0} for c in chosen},
        source_task_id=source_task_id,
    )


def notify_user(
    user_id: str | int,
    type: str,
    message: str,
    metadata: dict[str, Any] | None = None,
    channels: list[str] | None = None,
) -> Notification:
    """Create the in-app notification now and schedule delivery on its other channels.

    Runs in the caller's transaction: if it rolls back, there is no notification and nothing is
    sent. ``channels`` narrows the channels (``in_app``, ``email``, ``webhook``); the user's
    preferences can still turn channels off."""
    with transaction.atomic():
        notification = create_notification(user_id, type, message, metadata, channels)
        schedule(
            DELIVER_TASK,
            {"notificationId": notification.pk},
            user_id=str(user_id),
            correlation_id=f"notification-{notification.pk}",
        )
    return notification


def set_preference(
    user_id: str | int, channels: list[str], *, type: str = "", email: str = ""
) -> NotificationPreference:
    unknown = sorted(set(channels) - set(Channel.values))
    if unknown:
        raise InvalidTaskRequest(f"unknown channels: {', '.join(unknown)}", field="channels")
    pref, _ = NotificationPreference.objects.update_or_create(
        user_id=str(user_id), type=type, defaults={"channels": channels, "email": email}
    )
    return pref


def mark_read(notification_id: int) -> Notification:
    """Mark read (idempotent: the first read time is kept). Raises Notification.DoesNotExist."""
    now = timezone.now()
    Notification.objects.filter(pk=notification_id, read_at__isnull=True).update(read_at=now)
    return Notification.objects.get(pk=notification_id)


def unread_count(user_id: str | int) -> int:
    return Notification.objects.filter(user_id=str(user_id), read_at__isnull=True).count()
