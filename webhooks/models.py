"""Endpoints that receive webhooks, the deliveries owed to them, and every attempt made."""

from __future__ import annotations

import fnmatch
import json
import uuid

from django.db import models
from django.db.models import Q


class WebhookEndpoint(models.Model):
    """A URL that receives the events it subscribes to, signed with its secret."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.URLField(max_length=2000)
    #: ``whsec_`` + base64 key. Shown once, at creation; never logged.
    secret = models.CharField(max_length=200)
    #: During a rotation the previous secret signs too, until it expires.
    previous_secret = models.CharField(max_length=200, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    #: Event types, exact ("task.completed") or wildcards ("task.*", "*").
    event_types = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=500, blank=True, default="")
    description = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url

    def subscribes_to(self, event_type: str) -> bool:
        return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in self.event_types)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # an attempt is scheduled or running
    SUCCEEDED = "succeeded"  # the endpoint answered 2xx
    FAILED = "failed"  # the last attempt failed; the next one is due at next_attempt_at
    PERMANENTLY_FAILED = "permanently_failed"  # out of retries, or a failure retrying can't fix


#: Deliveries the app still owes an attempt.
OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)


class WebhookDelivery(models.Model):
    """One event owed to one endpoint. Its ``message_id`` is the ``webhook-id`` header: the same
    for every attempt and every endpoint of one published event, so receivers can deduplicate."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    message_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
    status = models.CharField(
        max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    #: attempts made before the latest redelivery: the retry schedule restarts there
    retries_from = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    #: the taskhub task of the latest scheduled attempt
    task_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=OPEN_STATUSES),
                name="delivery_open_idx",
            ),
            models.Index(fields=["status", "-created_at"], name="delivery_status_idx"),
            models.Index(fields=["endpoint", "-created_at"], name="delivery_endpoint_idx"),
            models.Index(fields=["created_at"], name="delivery_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.endpoint_id} ({self.status})"

    def body(self) -> bytes:
        """The request body, identical on every attempt (Standard Webhooks' envelope)."""
        envelope = {
            "type": self.event_type,
            "timestamp": self.created_at.isoformat(),
            "data": self.payload,
        }
        return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


class DeliveryAttempt(models.Model):
    """One HTTP attempt of a delivery: what was sent (no secrets) and what came back."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    number = models.PositiveIntegerField()
    at = models.DateTimeField()
    url = models.URLField(max_length=2000)
    request_headers = models.JSONField(default=dict)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    #: at most 4 KiB of the response body
    response_body = models.TextField(blank=True, default="")
    duration = models.FloatField(help_text="seconds")
    error = models.TextField(blank=True, default="")
    task_id = models.UUIDField(null=True, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        indexes = [models.Index(fields=["delivery", "number"], name="attempt_delivery_idx")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {self.response_code or self.error}"
