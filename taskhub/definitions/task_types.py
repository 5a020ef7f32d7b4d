"""What kind of work a task is: the type every task declares, stored on its row and queried by
the API (``?type=``), the admin and the metrics (``tasksByType``).

The kinds are those of Wafra's task-management document (its ``TaskType`` enum); ``other`` is
the type of a task that declares none (maintenance, pings, generic HTTP calls).
"""

from __future__ import annotations

from django.db import models


class TaskType(models.TextChoices):
    PAYMENT_PROCESSING = "payment_processing"  # moves money with a payment provider
    BLOCKCHAIN_TRANSACTION = "blockchain_transaction"  # sends, tracks or reads chain transactions
    KYC_VERIFICATION = "kyc_verification"  # checks a user's identity with a KYC provider
    NOTIFICATION_DELIVERY = "notification_delivery"  # e-mails, in-app messages, webhooks
    DATA_SYNC = "data_sync"  # copies data in from elsewhere (imports, syncs, indexing)
    OTHER = "other"  # declared no type


def parse_task_type(value: TaskType | str | None) -> TaskType:
    """The TaskType for a declaration (None: ``other``); ValueError naming the known types."""
    if value is None:
        return TaskType.OTHER
    try:
        return TaskType(value)
    except ValueError:
        known = ", ".join(TaskType.values)
        raise ValueError(f"unknown task type {value!r}: one of {known}") from None
