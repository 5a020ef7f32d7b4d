"""Attempt claims made by many worker threads at once (they share pipelined round trips)."""

from __future__ import annotations

import threading
import time
import uuid

import redis

from taskhub.engine import claims, pause, redis_memory
from taskhub.engine.claims import ClaimResult

THREADS = 16


def _claim_concurrently(attempts: list[tuple[str, int]]) -> list[ClaimResult | BaseException]:
    """Every thread claims its attempt at the same moment; each one's answer, in order."""
    start = threading.Barrier(len(attempts))
    answers: list[ClaimResult | BaseException | None] = [None] * len(attempts)

    def claim(i: int, task_id: str, attempt: int) -> None:
        start.wait()
        try:
            answers[i] = claims.claim_attempt(task_id, attempt, "default", f"worker-{i}")
        except BaseException as exc:  # noqa: BLE001 - the test inspects what each caller got
            answers[i] = exc

    threads = [threading.Thread(target=claim, args=(i, t, a)) for i, (t, a) in enumerate(attempts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return answers


def test_one_attempt_claimed_by_many_threads_at_once_starts_exactly_once(redis_client):
    task_id = str(uuid.uuid4())
    answers = _claim_concurrently([(task_id, 1)] * THREADS)
    assert answers.count(ClaimResult.CLAIMED) == 1
    assert answers.count(ClaimResult.DUPLICATE) == THREADS - 1
    winner = answers.index(ClaimResult.CLAIMED)
    assert redis_client.get(claims.claim_key(task_id, 1)) == f"worker-{winner}".encode()


def test_each_thread_gets_the_answer_for_its_own_attempt(redis_client):
    cancelled = str(uuid.uuid4())
    claims.set_cancel_flags([(cancelled, 1)])
    attempts = [(str(uuid.uuid4()), 1) for _ in range(THREADS - 1)] + [(cancelled, 1)]
    answers = _claim_concurrently(attempts)
    assert answers[:-1] == [ClaimResult.CLAIMED] * (THREADS - 1)
    assert answers[-1] == ClaimResult.CANCELLED


def test_a_redis_failure_reaches_every_waiting_thread_and_the_next_claims_work(monkeypatch):
    def refuse(pipe, batch):
        raise redis.ConnectionError("Redis went away")

    with monkeypatch.context() as patch:
        patch.setattr(claims._shared, "_send_calls", refuse)
        answers = _claim_concurrently([(str(uuid.uuid4()), 1) for _ in range(THREADS)])
    assert all(isinstance(a, redis.ConnectionError) for a in answers), answers
    # The sender thread survived: claims work again once Redis answers.
    assert claims.claim_attempt(str(uuid.uuid4()), 1, "default", "w") is ClaimResult.CLAIMED


def test_a_fetched_batch_is_claimed_in_one_call_with_an_answer_for_each(redis_client):
    fresh, taken, cancelled = (str(uuid.uuid4()) for _ in range(3))
    claims.claim_fetched([(taken, 1, "default")], "other-worker")
    claims.set_cancel_flags([(cancelled, 1)])

    answers = claims.claim_fetched(
        [(fresh, 1, "default"), (taken, 1, "default"), (cancelled, 1, "default")], "me"
    )

    assert answers == [ClaimResult.CLAIMED, ClaimResult.DUPLICATE, ClaimResult.CANCELLED]
    assert redis_client.get(claims.claim_key(fresh, 1)) == b"me"
    assert redis_client.get(claims.claim_key(taken, 1)) == b"other-worker"


def test_a_claim_made_at_fetch_reads_a_cancel_or_pause_that_landed_before_it_starts(
    redis_client,
):
    kept, cancelled, paused = (str(uuid.uuid4()) for _ in range(3))
    queue = f"q-{uuid.uuid4().hex[:6]}"
    claims.claim_fetched([(t, 1, queue) for t in (kept, cancelled, paused)], "me")
    claims.set_cancel_flags([(cancelled, 1)])

    assert claims.confirm_claim(kept, 1, queue, "me") is ClaimResult.CLAIMED
    assert claims.confirm_claim(cancelled, 1, queue, "me") is ClaimResult.CANCELLED
    pause.sync_pause_flags([queue], [queue])
    try:
        assert claims.confirm_claim(paused, 1, queue, "me") is ClaimResult.PAUSED
    finally:
        pause.sync_pause_flags([], [queue])
    # The claims stay ours: a cancelled attempt is ended and a paused one handed back by this
    # worker, and an attempt number is never used again, so no other copy may start them.
    for task_id in (kept, cancelled, paused):
        assert redis_client.get(claims.claim_key(task_id, 1)) == b"me"
        assert claims.claim_attempt(task_id, 1, queue, "other") is ClaimResult.DUPLICATE
    # Someone else's claim is never confirmed as ours.
    assert claims.confirm_claim(kept, 1, queue, "not-me") is ClaimResult.DUPLICATE


def test_a_cancel_covers_the_attempts_up_to_the_one_it_names_not_a_retry_after_it(
    redis_client,
):
    """A cancelled task that is retried runs again: its next attempt is above the flag."""
    task_id = str(uuid.uuid4())
    claims.set_cancel_flags([(task_id, 2)])

    assert claims.claim_attempt(task_id, 2, "default", "w") is ClaimResult.CANCELLED
    assert claims.claim_fetched([(task_id, 1, "default")], "w") == [ClaimResult.CANCELLED]
    assert claims.is_cancel_requested(task_id, 2)
    assert not claims.is_cancel_requested(task_id, 3)
    assert claims.claim_attempt(task_id, 3, "default", "w") is ClaimResult.CLAIMED
    assert claims.claim_fetched([(task_id, 4, "default")], "w") == [ClaimResult.CLAIMED]
    # A late write for an earlier attempt never lowers the flag.
    claims.set_cancel_flags([(task_id, 1)])
    assert claims.is_cancel_requested(task_id, 2)


def test_a_copy_of_a_claimed_attempt_is_a_duplicate_even_once_cancelled_or_paused(
    redis_client,
):
    """Only the holder of an attempt's claim decides its fate: another copy arriving after a
    cancel or a pause must not end or hand back an attempt that is running elsewhere."""
    running, queue = str(uuid.uuid4()), f"q-{uuid.uuid4().hex[:6]}"
    assert claims.claim_attempt(running, 1, queue, "runner") is ClaimResult.CLAIMED
    claims.set_cancel_flags([(running, 1)])
    pause.sync_pause_flags([queue], [queue])
    try:
        assert claims.claim_attempt(running, 1, queue, "copy") is ClaimResult.DUPLICATE
        assert claims.claim_fetched([(running, 1, queue)], "copy") == [ClaimResult.DUPLICATE]
        rated = claims.claim_attempt(running, 1, queue, "copy", rate_limits={"t": 100})
        assert rated is ClaimResult.DUPLICATE
    finally:
        pause.sync_pause_flags([], [queue])
    assert redis_client.get(claims.claim_key(running, 1)) == b"runner"


def test_an_un_queued_attempt_is_retired_so_a_copy_that_reached_the_broker_never_runs(
    redis_client,
):
    sent_anyway, held = str(uuid.uuid4()), str(uuid.uuid4())
    claims.claim_attempt(held, 1, "default", "worker")

    claims.retire_attempts([(sent_anyway, 1), (held, 1)])

    assert claims.claim_attempt(sent_anyway, 1, "default", "w") is ClaimResult.DUPLICATE
    assert redis_client.get(claims.claim_key(held, 1)) == b"worker"


# -- a message RabbitMQ delivers again after Redis lost its data ------------------------------
def _data_began(redis_client, at: float) -> None:
    redis_client.set(redis_memory.kept_key(), f"{at:.6f}")


def test_a_message_sent_before_redis_lost_its_data_has_its_unclaimed_attempt_retired(
    redis_client,
):
    """Its first delivery may have started the attempt and taken a claim the loss erased: no
    copy of it may be claimed afresh."""
    task_id, now = str(uuid.uuid4()), time.time()
    _data_began(redis_client, now)

    assert claims.retire_if_lost(task_id, 1, int((now - 5) * 1000)) is True

    assert claims.claim_holders([(task_id, 1)]) == [claims.RETIRED]
    assert claims.claim_attempt(task_id, 1, "default", "w") is ClaimResult.DUPLICATE


def test_a_message_sent_since_redis_data_began_or_an_attempt_held_is_not_retired(redis_client):
    sent_since, held, now = str(uuid.uuid4()), str(uuid.uuid4()), time.time()
    _data_began(redis_client, now - 5)
    claims.claim_attempt(held, 1, "default", "runner")

    assert claims.retire_if_lost(sent_since, 1, int(now * 1000)) is False
    assert claims.retire_if_lost(held, 1, int((now - 60) * 1000)) is False

    assert claims.claim_attempt(sent_since, 1, "default", "w") is ClaimResult.CLAIMED
    assert claims.claim_holders([(held, 1)]) == ["runner"]


def test_with_no_word_of_when_redis_data_began_it_begins_at_the_first_look(redis_client):
    """Right after a flush nobody has marked the loss: a message already sent is older."""
    redis_client.delete(redis_memory.kept_key())
    task_id, sent = str(uuid.uuid4()), int(time.time() * 1000) - 1

    assert claims.retire_if_lost(task_id, 1, sent) is True

    began = float(redis_client.get(redis_memory.kept_key()))
    assert sent / 1000 < began <= time.time() + 1
    assert redis_memory.observe().kept_since == began  # the lifeline reads the same mark
