"""The message that carries one attempt to a worker: its envelope (built here only), and the
send, one script call per queue on Redis. Used by the dispatcher's sends and the lifeline's
re-sends of a lost message (the same attempt: its claim drops a duplicate)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import dramatiq

from .broker import EXECUTE_ACTOR, get_broker
from .redis_transport import TaskhubRedisBroker

#: Tokens pushed per queue per send: enough to wake every idle consumer of a few hosts.
NUDGES_PER_SEND = 32


@dataclass(frozen=True)
class Dispatched:
    """A row this cycle moved to ``queued``, and the message that carries it."""

    envelope: dict[str, Any]
    priority: int

    @property
    def message(self) -> dramatiq.Message:
        env = self.envelope
        return dramatiq.Message(
            queue_name=env["queue"],
            actor_name=EXECUTE_ACTOR,
            args=(env,),
            kwargs={},
            options={"time_limit": int(env["timeout"] * 1000)},
        )


def envelope(
    task_id: Any,
    name: str,
    queue: str,
    attempt: int,
    max_attempts: int,
    payload: Any,
    correlation_id: str,
    user_id: str,
    timeout: float,
    coordinated: bool,
) -> dict:
    """The message body of one attempt: what a worker needs to run it without reading its row.
    The one place it is built."""
    return {
        "id": str(uuid.UUID(str(task_id))),
        "name": name,
        "queue": queue,
        "attempt": attempt,
        "max_attempts": max_attempts,
        "payload": payload,
        "correlation_id": correlation_id,
        "user_id": user_id,
        "timeout": timeout,
        # A workflow step or a child: its end must be settled by the coordinator.
        "coordinated": bool(coordinated),
    }


def send_messages(messages: list[dramatiq.Message]) -> None:
    """Send messages to the broker; on Redis, one script call per queue."""
    broker = get_broker()
    if not isinstance(broker, TaskhubRedisBroker):
        for message in messages:
            broker.enqueue(message)
        return
    by_queue: dict[str, list[dramatiq.Message]] = {}
    for message in messages:
        by_queue.setdefault(message.queue_name, []).append(message)
    for batch in by_queue.values():
        # Each send also wakes idle consumers of the queue (taskhub.engine.redis_transport): a token
        # nobody takes expires, and one taken late only costs an empty fetch.
        broker.enqueue_many(batch, nudges=NUDGES_PER_SEND)
