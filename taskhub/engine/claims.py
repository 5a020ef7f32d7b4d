"""Redis keys that guard an attempt: its claim, and the cancel and pause flags a worker checks
(a queue's pause flag is kept by taskhub.engine.pause).

The claim is what keeps an attempt from starting twice (docs/architecture.md, "No double
start"): whichever worker sets ``claim:<task>:<attempt>`` first runs it; every other copy of the
message is dropped.

A Redis worker claims a fetched batch in one round trip (``claim_fetched``), before the
attempts wait for a thread, and confirms a claim that waited more than a moment
(``confirm_claim``); other brokers, and attempts under a rate limit, claim when the attempt
starts (``claim_attempt``).

Whoever takes an attempt's claim decides what becomes of that attempt: it runs it
(``claimed``), hands it back because its queue is paused (``paused``), or ends it because the
task was cancelled (``cancelled``). A copy finding the claim taken is always a ``duplicate``
and does nothing. Attempt numbers are never reused, so a claim is never given back to be
taken again: a handed-back attempt stays claimed and its task's next dispatch is a new attempt.

A claim can go with Redis's data (a flush, a restart without persistence) while the attempt's
message survives in RabbitMQ. When RabbitMQ delivers such a message again (its consumer was
killed), the attempt may have started before the loss; ``retire_if_lost`` retires it instead of
letting it be claimed afresh, and the lifeline counts it lost (taskhub.engine.lifeline).

A cancel flag holds the highest attempt it covers: a retried task's next attempt is above it.
The scripts are in lua/, beside this module.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

from ..conf import taskhub_settings
from .broker import get_redis, key
from .pause import STOPPED_CHECK, pause_key
from .redis_batch import SharedRoundTrips
from .redis_memory import kept_key

_LUA = Path(__file__).with_name("lua")


def _lua(name: str, *, checks: bool = True) -> str:
    """A script of lua/, loaded once at import; a claim script after the cancel and pause check
    the claim scripts share (taskhub.engine.pause)."""
    source = (_LUA / name).read_text()
    return STOPPED_CHECK + source if checks else source


# Each script's KEYS, ARGV and answers are described at the top of its file.
_CLAIM_SCRIPT = _lua("claim.lua")  # one attempt, waiting for rate-limit slots
_CLAIM_MANY_SCRIPT = _lua("claim_many.lua")  # a batch of attempts without rate limits
_CONFIRM_SCRIPT = _lua("confirm_claim.lua")  # a claim made at fetch, checked again at start
_RAISE_CANCEL_SCRIPT = _lua("raise_cancel.lua", checks=False)
_RETIRE_IF_LOST_SCRIPT = _lua("retire_if_lost.lua", checks=False)


class ClaimResult(StrEnum):
    CLAIMED = "claimed"  # this worker runs the attempt
    DUPLICATE = "duplicate"  # another copy of the message already claimed it: drop this one
    CANCELLED = "cancelled"  # claimed, but the task was cancelled after it was queued: end it
    PAUSED = "paused"  # claimed, but its queue was paused after it was queued: hand it back
    # Its claim may have gone with Redis's data after the attempt started: it never runs, and
    # the lifeline counts it lost (``retire_if_lost``).
    RETIRED = "retired"


def claim_key(task_id: uuid.UUID | str, attempt: int) -> str:
    return key("claim", task_id, attempt)


def cancel_key(task_id: uuid.UUID | str) -> str:
    return key("cancel", task_id)


def liveness_key(worker_id: str) -> str:
    return key("worker", worker_id)


def live_in_redis(worker_ids: Iterable[str]) -> set[str]:
    """Which of these workers refreshed their liveness key within the lifeline timeout."""
    ids = list(worker_ids)
    if not ids:
        return set()
    values = get_redis().mget([liveness_key(w) for w in ids])
    return {w for w, v in zip(ids, values, strict=True) if v}


_scripts: dict[str, object] = {}


def _registered(source: str):
    # redis-py's Script knows its SHA without asking Redis, and when called directly reloads a
    # script Redis forgot (a restart, a flush) and calls it again.
    if source not in _scripts:
        _scripts[source] = get_redis().register_script(source)
    return _scripts[source]


def _queue_claims(pipe, claims: list[tuple[list[str], str, int]]):
    """Queue one script call for a batch of (keys, worker id, attempt) claims; returns the reply
    reader."""
    keys = [k for claim_keys, _, _ in claims for k in claim_keys]
    holders = [v for _, worker_id, attempt in claims for v in (worker_id, attempt)]
    sha = _registered(_CLAIM_MANY_SCRIPT).sha
    pipe.evalsha(sha, len(keys), *keys, int(taskhub_settings.CLAIM_TTL), *holders)
    return lambda replies: [a.decode() if isinstance(a, bytes) else a for a in replies[0]]


# Claims that worker threads make at the same moment share one round trip. Each claim is still
# made when its attempt is about to start: pauses, cancels and a dead worker's claims behave
# exactly as with one call per claim.
_shared = SharedRoundTrips(
    "taskhub-claims", get_redis, scripts=[_CLAIM_MANY_SCRIPT], send_calls=_queue_claims
)


def claim_attempt(
    task_id: str,
    attempt: int,
    queue: str,
    worker_id: str,
    rate_limits: dict[str, float] | None = None,
) -> ClaimResult:
    """Claim an attempt for this worker. With ``rate_limits`` ({limiter name: starts per
    second}), waits until every limiter has a free slot in its sliding one-second window."""
    limits = rate_limits or {}
    keys = [
        claim_key(task_id, attempt),
        cancel_key(task_id),
        pause_key(queue),
        *(key("rate", name) for name in limits),
    ]
    if not limits:
        return ClaimResult(_shared.call((keys, worker_id, attempt)))
    args = [worker_id, int(taskhub_settings.CLAIM_TTL), attempt, *limits.values()]
    while True:
        outcome = _registered(_CLAIM_SCRIPT)(keys=keys, args=args)
        outcome = outcome.decode() if isinstance(outcome, bytes) else outcome
        if not outcome.isdigit():
            return ClaimResult(outcome)
        time.sleep(int(outcome) / 1000)


def claim_fetched(attempts: list[tuple[str, int, str]], worker_id: str) -> list[ClaimResult]:
    """Claim a fetched batch of (task, attempt, queue) for this worker in one round trip, before
    the attempts wait for a free thread (taskhub.engine.worker claims at fetch)."""
    if not attempts:
        return []
    keys = [k for t, a, q in attempts for k in (claim_key(t, a), cancel_key(t), pause_key(q))]
    holders = [v for _, attempt, _ in attempts for v in (worker_id, attempt)]
    ttl = int(taskhub_settings.CLAIM_TTL)
    answers = _registered(_CLAIM_MANY_SCRIPT)(keys=keys, args=[ttl, *holders])
    return [ClaimResult(a.decode() if isinstance(a, bytes) else a) for a in answers]


def confirm_claim(task_id: str, attempt: int, queue: str, worker_id: str) -> ClaimResult:
    """Re-read the cancel and pause flags for a claim made at fetch time (lua/confirm_claim.lua)."""
    keys = [claim_key(task_id, attempt), cancel_key(task_id), pause_key(queue)]
    answer = _registered(_CONFIRM_SCRIPT)(keys=keys, args=[worker_id, attempt])
    return ClaimResult(answer.decode() if isinstance(answer, bytes) else answer)


def release_claims(attempts: Iterable[tuple[str, int]]) -> None:
    """Forget several claims at once (fetched messages handed back to the broker unstarted)."""
    keys = [claim_key(t, a) for t, a in attempts]
    if keys:
        get_redis().delete(*keys)


#: The holder of a retired attempt's claim: an attempt that must never start.
RETIRED = "retired"


def retire_attempts(attempts: Iterable[tuple[str, int]]) -> list[bool]:
    """Take the claims of attempts that must never run (un-queued after their send failed, or
    found unclaimed by the lifeline): a copy of the message that did reach the broker, or a
    killed worker's, finds its attempt claimed and is dropped. A claim someone already holds is
    left alone. Returns, per attempt, whether it is retired (now or before)."""
    attempts = [(str(t), int(a)) for t, a in attempts]
    if not attempts:
        return []
    pipe = get_redis().pipeline(transaction=False)
    for task_id, attempt in attempts:
        pipe.set(claim_key(task_id, attempt), RETIRED, nx=True, ex=int(taskhub_settings.CLAIM_TTL))
    taken = pipe.execute()
    held = [(t, a) for (t, a), ok in zip(attempts, taken, strict=True) if not ok]
    holders = claim_holders(held)
    retired_before = {pair for pair, h in zip(held, holders, strict=True) if h == RETIRED}
    return [bool(ok) or pair in retired_before for pair, ok in zip(attempts, taken, strict=True)]


def retire_if_lost(task_id: str, attempt: int, sent_at_ms: int) -> bool:
    """Retire an unclaimed attempt whose message was sent before Redis last lost its data.

    For a message a broker other than Redis delivers again: its first delivery may have started
    the attempt and taken a claim that Redis has since lost, so an absent claim proves nothing.
    Returns whether the attempt is retired (its claim now held by :data:`RETIRED`). The send
    time is the sending host's clock, compared with Redis's: hosts whose clocks run behind
    Redis's retire messages they sent just after a loss (each costs an attempt)."""
    keys = [claim_key(task_id, attempt), kept_key()]
    answer = _registered(_RETIRE_IF_LOST_SCRIPT)(
        keys=keys, args=[int(sent_at_ms), int(taskhub_settings.CLAIM_TTL)]
    )
    return (answer.decode() if isinstance(answer, bytes) else answer) == RETIRED


def claim_holders(attempts: Iterable[tuple[str, int]]) -> list[str | None]:
    """The worker id holding each (task, attempt) claim, or None."""
    keys = [claim_key(t, a) for t, a in attempts]
    if not keys:
        return []
    return [v.decode() if v else None for v in get_redis().mget(keys)]


def reassert_claims(attempts: Iterable[tuple[str, int]], worker_id: str) -> None:
    """Rewrite our claims (after Redis lost its data, a running attempt must stay claimed)."""
    pipe = get_redis().pipeline(transaction=False)
    for task_id, attempt in attempts:
        pipe.set(claim_key(task_id, attempt), worker_id, ex=int(taskhub_settings.CLAIM_TTL))
    pipe.execute()


def set_cancel_flags(attempts: Iterable[tuple[str, int]]) -> None:
    """Flag (task, attempt) pairs cancelled: that attempt and any earlier one of the task never
    starts, and a running one sees ``ctx.cancelled``. A retry's later attempts are not covered."""
    attempts = [(str(t), int(a)) for t, a in attempts]
    if attempts:
        _registered(_RAISE_CANCEL_SCRIPT)(
            keys=[cancel_key(t) for t, _ in attempts],
            args=[int(taskhub_settings.CLAIM_TTL), *(a for _, a in attempts)],
        )


def is_cancel_requested(task_id: str, attempt: int) -> bool:
    """Whether a cancel covers this attempt of the task."""
    flag = get_redis().get(cancel_key(task_id))
    return flag is not None and int(flag) >= attempt
