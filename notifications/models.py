"""In-app notifications, their per-channel delivery state, and users' channel preferences."""

from __future__ import annotations

from django.db import models


class Channel(models.TextChoices):
    IN_APP = "in_app"  # the Notification row, listed by the API
    EMAIL = "email"  # an e-mail through the email.send task
    WEBHOOK = "webhook"  # a notification.created event for the webhooks app


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # not delivered yet (or failed and waiting for a retry)
    SENT = "sent"  # delivered (for e-mail: handed to email.send, whose task id is kept)
    SKIPPED = "skipped"  # nothing to deliver to (e.g. no e-mail address known)
    FAILED = "failed"  # gave up after the last attempt


class Notification(models.Model):
    """A message for one user; ``deliveries`` holds each channel's state so a retry re-sends
    only the channels that have not been delivered."""

    user_id = models.CharField(max_length=200, db_index=True)
    type = models.CharField(max_length=100)
    message = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    channels = models.JSONField(default=list, help_text="channels this notification goes to")
    #: {channel: {"status": DeliveryStatus, "attempts": n, "error": "", "at": iso, "ref": ""}}
    deliveries = models.JSONField(default=dict, blank=True)
    #: the notifications.deliver task that created this row, when the task created it
    source_task_id = models.UUIDField(null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user_id", "read_at"], name="notification_unread")]

    def __str__(self) -> str:
        return f"{self.type} for {self.user_id}"

    def delivery_status(self, channel: str) -> str:
        return (self.deliveries.get(channel) or {}).get("status", DeliveryStatus.PENDING)


class NotificationPreference(models.Model):
    """Which channels a user wants — for all types (``type`` empty) or for one type."""

    user_id = models.CharField(max_length=200)
    type = models.CharField(max_length=100, blank=True, default="", help_text="empty: every type")
    channels = models.JSONField(default=list)
    email = models.EmailField(blank=True, default="", help_text="address for the e-mail channel")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "type"], name="notification_pref_once")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.type or '*'}: {', '.join(self.channels)}"
