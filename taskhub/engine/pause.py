"""A queue's pause: what pausing a queue does, and where each part of it is kept.

The database row (``QueueState.paused``) is the truth, and survives restarts. While a queue is
paused nothing of it starts; its running tasks finish. That holds in three places:

1. **Nothing is dispatched.** The dispatcher reads the paused queues with each cycle's counts
   (taskhub.engine.dispatcher, ``_cycle_state``) and moves no row of theirs to the broker.
2. **A message already sent is handed back, not run.** Each paused queue has a Redis flag
   (:func:`pause_key`) that every claim script reads through :data:`STOPPED_CHECK`, the check
   the scripts of taskhub.engine.claims share: an attempt of a paused queue is claimed as
   ``paused``, and the worker hands it back uncharged (taskhub.engine.worker ``_hand_back``,
   recorded by ``transitions.hand_back``). Only a message a worker fetched less than
   ``CLAIM_FRESH_FOR`` (25 ms) before the pause may still start.
3. **The flags follow the rows.** A pause or resume sets its flag once it commits
   (:func:`set_paused`); the dispatcher repairs every flag about once a second
   (:func:`repair_flags`), after a Redis flush or a pause that rolled back.

Operators pause and resume through taskhub.console.services (``pause_queue``, ``resume_queue``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from django.db import transaction

from ..definitions.registry import declared_queues
from ..models import QueueState
from .broker import get_redis, key, wake_dispatcher

#: Lua: ``stopped(cancel_flag, pause_flag, attempt)`` → ``'cancelled'``, ``'paused'`` or false.
#: Every claim script starts with it (taskhub.engine.claims), so the cancel and pause check is
#: written once.
STOPPED_CHECK = (Path(__file__).with_name("lua") / "stopped.lua").read_text()

#: A flag of a queue the database says is not paused is cleared only once it is this old
#: (seconds), so a repair that read the rows just before a pause committed can never erase the
#: flag that pause just set.
STALE_AFTER = 2.0


def pause_key(queue: str) -> str:
    return key("paused", queue)


def paused_queues() -> set[str]:
    """The queues paused in the database."""
    return set(QueueState.objects.filter(paused=True).values_list("name", flat=True))


def set_paused(name: str, paused: bool) -> QueueState:
    """Pause or resume a queue (the caller checked that it is declared)."""
    state, _ = QueueState.objects.update_or_create(name=name, defaults={"paused": paused})

    # The flag takes effect on workers at once — once the row is committed, so a rolled-back
    # pause leaves no flag behind; the dispatcher keeps the flags in step with the rows.
    def apply() -> None:
        sync_pause_flags({name} if paused else set(), [name])
        if not paused:
            wake_dispatcher(name)

    transaction.on_commit(apply)
    return state


def repair_flags() -> None:
    """Make the Redis pause flags match the rows (Redis may have been flushed, a pause may have
    been rolled back): set every paused queue's flag, clear the stale flags of the others."""
    paused = paused_queues()
    unpaused = [q for q in declared_queues() if q not in paused]
    sync_pause_flags(paused, [*paused, *stale_pause_flags(unpaused, older_than=STALE_AFTER)])


def sync_pause_flags(paused: Iterable[str], queues: Iterable[str]) -> None:
    """Make the Redis pause flags match the database (the truth) for the given queues.

    A flag holds the time it was set, so a repair can tell a fresh pause from a stale flag.
    """
    paused = set(paused)
    pipe = get_redis().pipeline(transaction=False)
    for queue in queues:
        if queue in paused:
            pipe.set(pause_key(queue), f"{time.time():.3f}", nx=True)
        else:
            pipe.delete(pause_key(queue))
    pipe.execute()


def stale_pause_flags(unpaused: Iterable[str], older_than: float) -> list[str]:
    """Queues not paused in the database whose pause flag was set over ``older_than`` s ago."""
    queues = list(unpaused)
    if not queues:
        return []
    values = get_redis().mget([pause_key(q) for q in queues])
    now = time.time()
    return [
        q
        for q, v in zip(queues, values, strict=True)
        if v is not None and now - float(v or 0) > older_than
    ]
