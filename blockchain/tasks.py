"""``blockchain.index_subscriptions`` (run it from a cron) and ``blockchain.handle_event``."""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction
from pydantic import BaseModel, ConfigDict, Field, field_validator
from web3 import Web3

from taskhub import TaskType, task
from taskhub.definitions.retry import Exponential
from taskhub.scheduler.cron import cron

from .indexer import index_subscription
from .models import EventSubscription, ReportedEvent
from .signals import blockchain_event


class IndexSubscriptions(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    #: only these subscriptions (default: every active one)
    subscription_ids: list[int] | None = Field(default=None, alias="subscriptionIds")


class IndexingFailed(Exception):
    """Some subscriptions could not be indexed (RPC down…); the others were. Retried."""


# Every 15 seconds (6-field cron, seconds first); a run with no active subscription is a no-op.
@cron("*/15 * * * * *")
@task(
    "blockchain.index_subscriptions",
    queue="blockchain-events",
    type=TaskType.BLOCKCHAIN_TRANSACTION,
    schema=IndexSubscriptions,
    max_attempts=3,
    retry=Exponential(base=2, cap=60),
    timeout=600,
)
def index_subscriptions(payload: IndexSubscriptions, ctx) -> dict:
    """Index every active subscription from its cursor. Meant to run from a cron."""
    subs = EventSubscription.objects.filter(active=True).order_by("pk")
    if payload.subscription_ids is not None:
        subs = subs.filter(pk__in=payload.subscription_ids)
    reports, failures = [], {}
    ids = list(subs.values_list("pk", flat=True))
    for done, sub_id in enumerate(ids, start=1):
        ctx.check_cancelled()
        try:
            report = index_subscription(sub_id)
        except Exception as exc:  # one bad network must not stop the others
            failures[sub_id] = f"{type(exc).__name__}: {exc}"
            EventSubscription.objects.filter(pk=sub_id).update(last_error=failures[sub_id][:2000])
            continue
        reports.append(report.__dict__)
        ctx.set_progress(100 * done / len(ids))
    if failures:
        raise IndexingFailed(f"{len(failures)} of {len(ids)} subscriptions failed: {failures}")
    return {
        "subscriptions": len(reports),
        "stored": sum(r["stored"] for r in reports),
        "removed": sum(r["removed"] for r in reports),
        "reports": reports,
    }


class HandleEvent(BaseModel):
    """Payload of ``blockchain.handle_event`` (``POST /api/task-queue/blockchain-event``)."""

    model_config = ConfigDict(populate_by_name=True)

    contract_address: str = Field(alias="contractAddress")
    event_name: str = Field(alias="eventName", min_length=1, max_length=100)
    parameters: dict[str, Any]  # required: part of the established API contract
    network_id: int | None = Field(default=None, alias="networkId", ge=1)
    #: what the reporter wants done with the event (the task-queue document's ``action``, e.g.
    #: ``"process-transfer"``): carried to every ``blockchain.event`` subscriber and the result
    action: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("contract_address")
    @classmethod
    def address(cls, value: str) -> str:
        if not re.fullmatch(r"0x[0-9a-fA-F]{40}", value):
            raise ValueError("contractAddress must be a 0x-prefixed 20-byte hex address")
        return Web3.to_checksum_address(value)


@task(
    "blockchain.handle_event",
    queue="blockchain-events",
    type=TaskType.BLOCKCHAIN_TRANSACTION,
    schema=HandleEvent,
    # The task-queue document's blockchain queue: 5 attempts, exponential from 3 s (3 → 6 → 12 …).
    max_attempts=5,
    retry=Exponential(initial=3, cap=120),
)
def handle_event(payload: HandleEvent, ctx) -> dict:
    """Store one reported event (once per task) and publish it as a ``blockchain.event``."""
    with transaction.atomic():
        row, created = ReportedEvent.objects.get_or_create(
            task_id=ctx.task_id,
            defaults={
                "network_id": payload.network_id,
                "contract_address": payload.contract_address,
                "event_name": payload.event_name,
                "parameters": payload.parameters,
            },
        )
        if created:
            blockchain_event.send(
                sender=ReportedEvent,
                event={
                    "type": "blockchain.event",
                    "data": {
                        "network_id": row.network_id,
                        "contract_address": row.contract_address,
                        "event_name": row.event_name,
                        "args": row.parameters,
                        "source": "reported",
                        "id": row.pk,
                        "action": payload.action,
                    },
                },
            )
    return {"event_id": row.pk, "stored": created, "action": payload.action}
