"""KYC cases: one document checked by one provider, and each user's current KYC status."""

from __future__ import annotations

import uuid

from django.db import models


class KycStatus(models.TextChoices):
    PENDING = "pending"  # stored; the check task is scheduled
    IN_REVIEW = "in_review"  # submitted; the provider is checking it
    APPROVED = "approved"  # accepted (terminal)
    REJECTED = "rejected"  # refused (terminal)
    NEEDS_REVIEW = "needs_review"  # the provider wants a person to look (may still resolve)
    EXPIRED = "expired"  # the document or the case expired (terminal)


KYC_TERMINAL = {KycStatus.APPROVED, KycStatus.REJECTED, KycStatus.EXPIRED}


class KycProvider(models.TextChoices):
    ONRAMP = "onramp"
    DTR = "dtr"


class DocumentType(models.TextChoices):
    PASSPORT = "passport"
    ID_CARD = "id_card"
    DRIVING_LICENSE = "driving_license"
    PROOF_OF_ADDRESS = "proof_of_address"
    SELFIE = "selfie"


class KycCase(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user_id = models.CharField(max_length=200, db_index=True)
    email = models.EmailField(blank=True)
    provider = models.CharField(max_length=16, choices=KycProvider.choices)
    document_id = models.UUIDField(default=uuid.uuid4, editable=False)
    document_type = models.CharField(max_length=32, choices=DocumentType.choices)
    document = models.FileField(upload_to="kyc/%Y/%m/", max_length=300)
    document_name = models.CharField(max_length=255)
    external_id = models.CharField(max_length=200, blank=True, db_index=True)
    #: bumped by "re-run the check": the provider sees a new reference and checks again
    submission = models.PositiveIntegerField(default=1)
    status = models.CharField(
        max_length=16, choices=KycStatus.choices, default=KycStatus.PENDING, db_index=True
    )
    reasons = models.JSONField(default=list, blank=True)
    #: the ``kyc.verify`` workflow run of the current submission (check → notify)
    workflow_run_id = models.UUIDField(null=True, blank=True, db_index=True)
    #: while True, that run's notify step tells the user the decision; afterwards (and for
    #: interim statuses) every status change notifies at once
    decision_notice_pending = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"KYC {self.user_id} {self.document_type} ({self.status})"

    @property
    def reference(self) -> str:
        return f"{self.id}:{self.submission}"

    @property
    def correlation_id(self) -> str:
        return f"kyc:{self.id}"


class UserKycStatus(models.Model):
    """A user's current KYC status: the status of their latest case that changed."""

    user_id = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=16, choices=KycStatus.choices)
    case = models.ForeignKey(KycCase, on_delete=models.SET_NULL, null=True, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "user KYC statuses"

    def __str__(self) -> str:
        return f"{self.user_id}: {self.status}"


class KycProviderEvent(models.Model):
    """A verified KYC callback, stored once per provider event id."""

    provider = models.CharField(max_length=16, choices=KycProvider.choices)
    event_id = models.CharField(max_length=200)
    external_id = models.CharField(max_length=200, db_index=True)
    raw_body = models.TextField()
    signature_valid = models.BooleanField(default=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="one_kyc_event_per_id")
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_id}"
