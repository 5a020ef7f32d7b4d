"""Event subscriptions with their indexing cursor, indexed events, and reported events."""

from __future__ import annotations

from django.db import models


class EventSubscription(models.Model):
    """Index one event of one contract on one network, from ``start_block`` on.

    ``next_block`` is the cursor: the first block not indexed yet. ``cursor_block_hash`` is the
    hash of the block before it, to notice when a reorganisation replaced that block."""

    name = models.CharField(max_length=200, blank=True, default="")
    network_id = models.PositiveBigIntegerField(help_text="EVM chain id, e.g. 1, 8453, 31337")
    contract_address = models.CharField(max_length=42)
    event_name = models.CharField(max_length=100)
    #: the event's ABI entry ({"type": "event", "name", "inputs": [...]})
    event_abi = models.JSONField()
    topic0 = models.CharField(max_length=66, help_text="keccak of the event signature")
    start_block = models.PositiveBigIntegerField(default=0)
    confirmations = models.PositiveIntegerField(
        default=12, help_text="blocks behind the head before an event is stored"
    )
    next_block = models.PositiveBigIntegerField()
    cursor_block_hash = models.CharField(max_length=66, blank=True, default="")
    active = models.BooleanField(default=True)
    last_indexed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["network_id", "contract_address", "topic0"], name="subscription_once"
            )
        ]

    def __str__(self) -> str:
        return self.name or f"{self.event_name}@{self.contract_address} on {self.network_id}"


class IndexedEvent(models.Model):
    """One decoded log. Unique by (chain, transaction, log index): indexing twice stores once."""

    subscription = models.ForeignKey(
        EventSubscription, on_delete=models.CASCADE, related_name="events"
    )
    network_id = models.PositiveBigIntegerField()
    contract_address = models.CharField(max_length=42)
    event_name = models.CharField(max_length=100)
    block_number = models.PositiveBigIntegerField()
    block_hash = models.CharField(max_length=66)
    tx_hash = models.CharField(max_length=66)
    log_index = models.PositiveIntegerField()
    #: decoded arguments; integers as decimal strings (uint256 overflows JSON numbers), bytes as 0x
    args = models.JSONField(default=dict)
    indexed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["network_id", "tx_hash", "log_index"], name="indexed_event_once"
            )
        ]
        indexes = [models.Index(fields=["subscription", "block_number"])]
        ordering = ["network_id", "block_number", "log_index"]

    def __str__(self) -> str:
        return f"{self.event_name} {self.tx_hash}#{self.log_index}"


class ReportedEvent(models.Model):
    """An event handed to ``blockchain.handle_event`` (e.g. by ``POST
    /api/task-queue/blockchain-event``); one per task, so a retried task stores it once."""

    task_id = models.UUIDField(unique=True)
    network_id = models.PositiveBigIntegerField(null=True, blank=True)
    contract_address = models.CharField(max_length=42)
    event_name = models.CharField(max_length=100)
    parameters = models.JSONField(default=dict)
    received_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.event_name}@{self.contract_address}"
