"""Payments through the DTR provider, the Safe transactions they lead to, and provider callbacks.

Statuses only move forward through the services in ``services.py`` and ``safe.py`` — each
transition is one guarded UPDATE, so a retried or duplicated task cannot apply it twice.
"""

from __future__ import annotations

import uuid

from django.db import models

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


class PaymentStatus(models.TextChoices):
    CREATED = "created"  # stored; the processing task is scheduled
    PENDING = "pending"  # the processing task is sending it to the provider
    PROCESSING = "processing"  # the provider accepted it; waiting for its outcome
    COMPLETED = "completed"  # paid (terminal)
    FAILED = "failed"  # declined or errored at the provider (terminal)
    CANCELED = "canceled"  # canceled at the provider (terminal)
    #: paid, then refunded at the provider (only by the settle workflow's compensation)
    REFUNDED = "refunded"


PAYMENT_TERMINAL = {
    PaymentStatus.COMPLETED,
    PaymentStatus.FAILED,
    PaymentStatus.CANCELED,
    PaymentStatus.REFUNDED,
}


class Payment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user_id = models.CharField(max_length=200, db_index=True)
    amount = models.DecimalField(max_digits=24, decimal_places=4)
    currency = models.CharField(max_length=3)
    payment_method_id = models.CharField(max_length=200)
    metadata = models.JSONField(default=dict, blank=True)
    provider = models.CharField(max_length=32, default="dtr")
    provider_payment_id = models.CharField(max_length=200, blank=True, db_index=True)
    status = models.CharField(
        max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.CREATED, db_index=True
    )
    failure_reason = models.CharField(max_length=500, blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    #: sha256 of the canonical request body: the same key with another body is refused (409)
    request_hash = models.CharField(max_length=64)
    processing_task_id = models.UUIDField(null=True, blank=True)
    blockchain_task_id = models.UUIDField(null=True, blank=True)
    #: the ``payments.settle`` workflow run: payment → Safe transaction → notification
    workflow_run_id = models.UUIDField(null=True, blank=True, db_index=True)
    #: the provider's refund id, once the settle workflow's compensation refunded the payment
    refund_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "updated_at"])]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} ({self.status})"

    @property
    def correlation_id(self) -> str:
        return f"payment:{self.id}"


class SafeTxStatus(models.TextChoices):
    PROPOSED = "proposed"  # stored with the user's signature
    CONFIRMED = "confirmed"  # enough owner signatures (the user's and the server's)
    SUBMITTED = "submitted"  # execTransaction sent; its chain transaction hash is recorded
    EXECUTED = "executed"  # ExecutionSuccess seen at the confirmation depth (terminal)
    #: rejected, reverted, ExecutionFailure or nonce taken — each only once the chain shows the
    #: safeTxHash did not execute (terminal; the settle workflow may then refund the payment)
    FAILED = "failed"


SAFE_TX_TERMINAL = {SafeTxStatus.EXECUTED, SafeTxStatus.FAILED}


class SafeTransaction(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user_id = models.CharField(max_length=200, db_index=True)
    payment = models.OneToOneField(
        Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="safe_transaction"
    )
    safe_address = models.CharField(max_length=42)
    chain_id = models.BigIntegerField()
    to = models.CharField(max_length=42)
    value = models.DecimalField(max_digits=78, decimal_places=0)
    data = models.TextField(default="0x", blank=True)  # 0x-prefixed hex
    operation = models.PositiveSmallIntegerField(default=0)
    safe_tx_gas = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    base_gas = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    gas_price = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    gas_token = models.CharField(max_length=42, default=ZERO_ADDRESS)
    refund_receiver = models.CharField(max_length=42, default=ZERO_ADDRESS)
    nonce = models.DecimalField(max_digits=78, decimal_places=0)
    safe_tx_hash = models.CharField(max_length=66, unique=True)
    backend = models.CharField(max_length=32, default="rpc")
    status = models.CharField(
        max_length=16, choices=SafeTxStatus.choices, default=SafeTxStatus.PROPOSED, db_index=True
    )
    failure_reason = models.CharField(max_length=500, blank=True)
    #: the relayer's signed execTransaction, kept so a retry re-sends the very same transaction
    raw_transaction = models.TextField(blank=True)
    eth_tx_hash = models.CharField(max_length=66, blank=True, db_index=True)
    block_number = models.BigIntegerField(null=True, blank=True)
    #: a block after which the Safe's nonce had not yet passed ours, so our safeTxHash can only
    #: have executed after it: where every search for the execution starts (recorded on
    #: acceptance or at the first execution attempt, before the server signs)
    search_from_block = models.BigIntegerField(null=True, blank=True)
    confirmations = models.PositiveIntegerField(default=0)
    execute_task_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    executed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Safe tx {self.safe_tx_hash[:12]}… ({self.status})"

    @property
    def correlation_id(self) -> str:
        return f"payment:{self.payment_id}" if self.payment_id else f"safe-tx:{self.id}"


class SignatureType(models.TextChoices):
    EOA = "EOA"  # EIP-712 signature over safeTxHash, v = 27/28
    ETH_SIGN = "ETH_SIGN"  # eth_sign over safeTxHash, submitted with v + 4


class SafeConfirmation(models.Model):
    safe_transaction = models.ForeignKey(
        SafeTransaction, on_delete=models.CASCADE, related_name="confirmation_set"
    )
    owner = models.CharField(max_length=42)
    signature = models.TextField()  # 0x-prefixed 65-byte hex, as submitted on chain
    signature_type = models.CharField(max_length=16, choices=SignatureType.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["owner"]
        constraints = [
            models.UniqueConstraint(
                fields=["safe_transaction", "owner"], name="one_confirmation_per_owner"
            )
        ]

    def __str__(self) -> str:
        return f"{self.owner} ({self.signature_type})"


class ProviderEvent(models.Model):
    """A signed callback from a payment provider, stored once per provider event id."""

    provider = models.CharField(max_length=32)
    event_id = models.CharField(max_length=200)
    raw_body = models.TextField()
    #: only callbacks whose signature checked out are stored; the rest are refused with a 4xx
    signature_valid = models.BooleanField(default=True)
    provider_payment_id = models.CharField(max_length=200, blank=True, db_index=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="one_event_per_id")
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_id}"
