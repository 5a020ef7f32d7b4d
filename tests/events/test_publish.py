"""Publishing event rows after commit: one message per transaction, never an error."""

from __future__ import annotations

import json

import pytest
import redis
from django.db import transaction

import taskhub
from taskhub.engine import events
from taskhub.engine.broker import get_redis


@pytest.fixture
def listener(db):
    """A subscriber on the events channel, so publishers see someone listening."""
    pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(events.channel())
    events._listeners["checked"] = 0.0
    yield pubsub
    pubsub.close()
    events._listeners["checked"] = 0.0


def _messages(pubsub, wait: float = 0.5) -> list[dict]:
    got = []
    while (message := pubsub.get_message(timeout=wait)) is not None:
        got.append(json.loads(message["data"]))
    return got


def test_scheduling_in_a_transaction_publishes_one_message_after_commit(
    listener, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        first = taskhub.schedule("test.noop", {}, user_id="A")
        second = taskhub.schedule("test.noop", {}, user_id="A")
        assert _messages(listener, 0.1) == []  # nothing before the commit
    [message] = _messages(listener)
    assert [(e["task"], e["kind"], e["status"]) for e in message["events"]] == [
        (str(first.id), "created", "pending"),
        (str(second.id), "created", "pending"),
    ]
    assert all(isinstance(e["id"], int) for e in message["events"])


def test_a_rolled_back_transaction_publishes_nothing(listener, django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        taskhub.schedule("test.noop", {})
        raise RuntimeError("roll back")
    assert _messages(listener, 0.2) == []


def test_a_redis_failure_is_logged_and_never_raised(db, monkeypatch, caplog):
    class Down:
        def pubsub_numsub(self, *a):
            raise redis.ConnectionError("redis is down")

    monkeypatch.setattr("taskhub.engine.events.get_redis", lambda: Down())
    events._listeners["checked"] = 0.0
    task = taskhub.schedule("test.noop", {})
    events.publish_events(task.events.all())
    assert "could not publish" in caplog.text
    events._listeners["checked"] = 0.0


def test_nothing_is_sent_while_nobody_listens(db, monkeypatch):
    sent = []

    class Quiet:
        def pubsub_numsub(self, *a):
            return [(b"x", 0)]

        def publish(self, *a):
            sent.append(a)

    monkeypatch.setattr("taskhub.engine.events.get_redis", lambda: Quiet())
    events._listeners["checked"] = 0.0
    task = taskhub.schedule("test.noop", {})
    events.publish_events(task.events.all())
    assert sent == []
    events._listeners["checked"] = 0.0
