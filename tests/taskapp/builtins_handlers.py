"""Data handlers and signal receivers the built-in task tests use in the worker processes.

They record what happened in Redis (under the session's key prefix), so a test sees what ran
inside the workers."""

import json
import time

from django.dispatch import receiver

from blockchain.signals import blockchain_event
from notifications.models import Notification
from notifications.signals import notification_created, operator_alert
from taskhub.builtins.data import data_handler
from taskhub.engine.broker import get_redis, key


def _store_batch_items(outputs, chunk):
    """Commit a chunk's items as rows (a real table, in the chunk's transaction)."""
    Notification.objects.bulk_create(
        [
            Notification(
                user_id=o["label"],
                type="test.batch_item",
                message=str(o["n"]),
                metadata={"chunk": chunk.index, "attempt": chunk.attempt},
            )
            for o in outputs
        ]
    )


@data_handler("test.collect", commit=_store_batch_items)
def collect(item: dict) -> dict:
    if item.get("bad"):
        raise ValueError(f"item {item.get('n')} is marked bad")
    n = int(item["n"])  # a missing or non-numeric n is an item error too
    if item.get("sleep"):
        time.sleep(float(item["sleep"]))
    get_redis().rpush(key("test", "transformed", str(item.get("label", ""))), n)
    return {"n": n, "label": str(item.get("label", "batch"))}


@receiver(notification_created, dispatch_uid="tests.webhook_channel")
def webhook_channel(sender, notification, event, **kwargs):
    client = get_redis()
    calls = client.incr(key("test", "webhook-calls", str(notification.pk)))
    if calls <= int(notification.metadata.get("fail_webhook_times", 0)):
        raise RuntimeError(f"webhook endpoint unavailable (call {calls})")
    client.rpush(key("test", "webhook-events"), json.dumps(event))


@receiver(blockchain_event, dispatch_uid="tests.chain_events")
def chain_events(sender, event, **kwargs):
    get_redis().rpush(key("test", "chain-events"), json.dumps(event))


@receiver(operator_alert, dispatch_uid="tests.operator_alerts")
def operator_alerts(sender, event, **kwargs):
    get_redis().rpush(key("test", "operator-alerts"), json.dumps(event))
