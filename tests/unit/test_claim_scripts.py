"""The Redis scripts that guard an attempt (taskhub.engine.claims), against the real Redis of the
test settings and no worker process: who gets a claim, what a cancel or a pause flag decides, and
what release, re-assertion and the pause-flag repair leave in Redis.

tests/unit/test_claims.py covers claims made by many threads at once, confirmation of a claim
made at fetch, and retired attempts; this module covers the rest of the scripts' decisions.
"""

from __future__ import annotations

import time
import uuid

import pytest

from taskhub.conf import taskhub_settings
from taskhub.engine import claims, pause
from taskhub.engine.claims import ClaimResult

CLAIMED, DUPLICATE = ClaimResult.CLAIMED, ClaimResult.DUPLICATE
CANCELLED, PAUSED = ClaimResult.CANCELLED, ClaimResult.PAUSED


def new_task() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def queue():
    """A queue of this test's own, its pause flag cleared afterwards."""
    name = f"q-{uuid.uuid4().hex[:8]}"
    yield name
    pause.sync_pause_flags([], [name])


def claim_ttl_of(redis_client, task_id: str, attempt: int) -> int:
    return redis_client.ttl(claims.claim_key(task_id, attempt))


# Both ways an attempt is claimed when it starts: the shared batch script, and the rate-limit
# script (with a limit far above anything these tests reach).
CLAIM_AT_START = {
    "batch script": lambda t, a, q, w: claims.claim_attempt(t, a, q, w),
    "rate script": lambda t, a, q, w: claims.claim_attempt(t, a, q, w, rate_limits={"u": 1e6}),
    "at fetch": lambda t, a, q, w: claims.claim_fetched([(t, a, q)], w)[0],
}
claim_ways = pytest.mark.parametrize("claim", CLAIM_AT_START.values(), ids=CLAIM_AT_START.keys())


# -- first claim wins -------------------------------------------------------------------------
@claim_ways
def test_the_first_claim_wins_and_every_later_copy_is_a_duplicate(claim, queue, redis_client):
    task_id = new_task()

    assert claim(task_id, 1, queue, "first") is CLAIMED
    assert claim(task_id, 1, queue, "second") is DUPLICATE
    assert claim(task_id, 1, queue, "first") is DUPLICATE  # a redelivered copy, same worker

    assert claims.claim_holders([(task_id, 1)]) == ["first"]
    ttl = claim_ttl_of(redis_client, task_id, 1)
    assert taskhub_settings.CLAIM_TTL - 10 <= ttl <= taskhub_settings.CLAIM_TTL
    # A claim is for one attempt: the task's next attempt is free.
    assert claim(task_id, 2, queue, "second") is CLAIMED
    assert claims.claim_holders([(task_id, 1), (task_id, 2), (new_task(), 1)]) == [
        "first",
        "second",
        None,
    ]


def test_two_copies_of_one_attempt_in_one_fetched_batch_start_once(queue):
    task_id = new_task()

    answers = claims.claim_fetched([(task_id, 1, queue), (task_id, 1, queue)], "w")

    assert answers == [CLAIMED, DUPLICATE]


def test_a_large_fetched_batch_gets_one_answer_per_attempt_in_order(queue, redis_client):
    taken, cancelled = {new_task() for _ in range(40)}, {new_task() for _ in range(40)}
    claims.claim_fetched([(t, 1, queue) for t in taken], "other")
    claims.set_cancel_flags([(t, 1) for t in cancelled])
    batch = [new_task() for _ in range(120)] + sorted(taken) + sorted(cancelled)
    batch.sort()  # interleave the three kinds

    answers = claims.claim_fetched([(t, 1, queue) for t in batch], "me")

    expected = [
        DUPLICATE if t in taken else CANCELLED if t in cancelled else CLAIMED for t in batch
    ]
    assert answers == expected
    holders = claims.claim_holders([(t, 1) for t in batch])
    assert holders == ["other" if t in taken else "me" for t in batch]
    assert claims.claim_fetched([], "me") == []


# -- cancel flags -----------------------------------------------------------------------------
@claim_ways
def test_a_cancel_flag_ends_the_attempts_up_to_its_number_and_not_a_later_one(claim, queue):
    task_id = new_task()
    claims.set_cancel_flags([(task_id, 2)])

    assert claim(task_id, 1, queue, "w") is CANCELLED
    assert claim(task_id, 2, queue, "w") is CANCELLED
    assert claim(task_id, 3, queue, "w") is CLAIMED
    # The one that claimed a cancelled attempt ends it; no other copy may run it.
    assert claim(task_id, 2, queue, "copy") is DUPLICATE
    assert claims.claim_holders([(task_id, 2)]) == ["w"]


def test_cancel_flags_rise_only_and_expire_with_the_claims(redis_client):
    first, second = new_task(), new_task()

    claims.set_cancel_flags([(first, 3), (second, 1)])
    claims.set_cancel_flags([(first, 2), (second, 4)])  # a late write for an earlier attempt

    assert redis_client.get(claims.cancel_key(first)) == b"3"
    assert redis_client.get(claims.cancel_key(second)) == b"4"
    assert [claims.is_cancel_requested(first, a) for a in (1, 3, 4)] == [True, True, False]
    assert not claims.is_cancel_requested(new_task(), 1)
    ttl = redis_client.ttl(claims.cancel_key(first))
    assert taskhub_settings.CLAIM_TTL - 10 <= ttl <= taskhub_settings.CLAIM_TTL


# -- pause flags ------------------------------------------------------------------------------
@claim_ways
def test_a_paused_queue_hands_the_attempt_back_and_keeps_it_claimed(claim, queue):
    paused, later = new_task(), new_task()
    pause.sync_pause_flags([queue], [queue])

    assert claim(paused, 1, queue, "w") is PAUSED
    assert claim(new_task(), 1, f"{queue}-other", "w") is CLAIMED  # other queues run on
    # The attempt number is not used again: another copy is a duplicate, whatever the flag.
    assert claim(paused, 1, queue, "copy") is DUPLICATE
    pause.sync_pause_flags([], [queue])
    assert claim(paused, 1, queue, "copy") is DUPLICATE
    assert claim(later, 1, queue, "w") is CLAIMED


def test_a_cancel_is_decided_before_a_pause(queue):
    """A cancelled attempt in a paused queue ends: handed back, it would only wait to end."""
    task_id = new_task()
    claims.set_cancel_flags([(task_id, 1)])
    pause.sync_pause_flags([queue], [queue])

    assert claims.claim_attempt(task_id, 1, queue, "w") is CANCELLED


def test_pause_flags_follow_the_database_and_keep_the_time_they_were_raised(queue, redis_client):
    other = f"{queue}-b"
    try:
        pause.sync_pause_flags([queue, other], [queue, other])
        raised_at = redis_client.get(pause.pause_key(queue))
        assert abs(float(raised_at) - time.time()) < 5

        # Re-applying a pause keeps its flag's time: a repair can tell a fresh pause.
        time.sleep(0.01)
        pause.sync_pause_flags([queue], [queue])
        assert redis_client.get(pause.pause_key(queue)) == raised_at

        # Resuming clears the flag; the queues not named are left as they are.
        pause.sync_pause_flags([], [queue])
        assert not redis_client.exists(pause.pause_key(queue))
        assert redis_client.exists(pause.pause_key(other))
    finally:
        pause.sync_pause_flags([], [other])


def test_only_pause_flags_older_than_the_threshold_are_stale(queue, redis_client):
    old, new, never = queue, f"{queue}-new", f"{queue}-never"
    try:
        redis_client.set(pause.pause_key(old), f"{time.time() - 10:.3f}")
        pause.sync_pause_flags([new], [new])

        assert pause.stale_pause_flags([old, new, never], older_than=2.0) == [old]
        assert pause.stale_pause_flags([], older_than=2.0) == []
    finally:
        pause.sync_pause_flags([], [new])


# -- release and re-assertion -----------------------------------------------------------------
def test_a_released_claim_can_be_taken_by_whoever_fetches_the_attempt_next(queue):
    released, kept = new_task(), new_task()
    claims.claim_fetched([(released, 1, queue), (kept, 1, queue)], "first")

    claims.release_claims([(released, 1)])
    claims.release_claims([])  # nothing to release: no call, no error

    assert claims.claim_holders([(released, 1), (kept, 1)]) == [None, "first"]
    assert claims.claim_fetched([(released, 1, queue)], "second") == [CLAIMED]
    assert claims.confirm_claim(released, 1, queue, "first") is DUPLICATE  # no longer ours
    assert claims.claim_attempt(kept, 1, queue, "second") is DUPLICATE


def test_reasserted_claims_are_back_after_redis_lost_them(queue, redis_client):
    running = [(new_task(), 1), (new_task(), 3)]
    for task_id, attempt in running:
        assert claims.claim_attempt(task_id, attempt, queue, "runner") is CLAIMED
    redis_client.delete(*(claims.claim_key(t, a) for t, a in running))  # Redis lost its data
    assert claims.claim_holders(running) == [None, None]

    claims.reassert_claims(running, "runner")

    assert claims.claim_holders(running) == ["runner", "runner"]
    for task_id, attempt in running:
        assert claims.claim_attempt(task_id, attempt, queue, "copy") is DUPLICATE
        ttl = claim_ttl_of(redis_client, task_id, attempt)
        assert taskhub_settings.CLAIM_TTL - 10 <= ttl <= taskhub_settings.CLAIM_TTL


def test_a_workers_liveness_key_is_what_live_in_redis_reads(redis_client):
    alive, gone = f"w-{uuid.uuid4().hex[:8]}", f"w-{uuid.uuid4().hex[:8]}"
    redis_client.set(claims.liveness_key(alive), 1, ex=30)

    assert claims.live_in_redis([alive, gone]) == {alive}
    assert claims.live_in_redis([]) == set()


# -- rate limits ------------------------------------------------------------------------------
def test_a_rate_limited_claim_waits_for_a_free_slot_in_the_one_second_window(queue):
    limiter = {f"unit-{uuid.uuid4().hex[:8]}": 2}
    started = time.monotonic()

    first = [claims.claim_attempt(new_task(), 1, queue, "w", rate_limits=limiter) for _ in "ab"]
    assert first == [CLAIMED, CLAIMED]
    assert time.monotonic() - started < 0.9  # within the limit: no wait

    assert claims.claim_attempt(new_task(), 1, queue, "w", rate_limits=limiter) is CLAIMED
    assert time.monotonic() - started >= 0.9  # the third waited for the first slot to free


def test_a_duplicate_takes_no_rate_slot(queue):
    limiter = {f"unit-{uuid.uuid4().hex[:8]}": 1}
    task_id = new_task()
    assert claims.claim_attempt(task_id, 1, queue, "w", rate_limits=limiter) is CLAIMED
    started = time.monotonic()

    assert claims.claim_attempt(task_id, 1, queue, "copy", rate_limits=limiter) is DUPLICATE
    assert time.monotonic() - started < 0.5
