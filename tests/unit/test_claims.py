"""Attempt claims made by many worker threads at once (they share pipelined round trips)."""

from __future__ import annotations

import threading
import uuid

import redis

from taskhub import claims
from taskhub.claims import ClaimResult

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
    claims.set_cancel_flags([cancelled])
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
    claims.set_cancel_flags([cancelled])

    answers = claims.claim_fetched(
        [(fresh, 1, "default"), (taken, 1, "default"), (cancelled, 1, "default")], "me"
    )

    assert answers == [ClaimResult.CLAIMED, ClaimResult.DUPLICATE, ClaimResult.CANCELLED]
    assert redis_client.get(claims.claim_key(fresh, 1)) == b"me"
    assert redis_client.get(claims.claim_key(taken, 1)) == b"other-worker"


def test_a_claim_made_at_fetch_is_let_go_if_a_cancel_or_pause_landed_before_it_starts(
    redis_client,
):
    kept, cancelled, paused = (str(uuid.uuid4()) for _ in range(3))
    queue = f"q-{uuid.uuid4().hex[:6]}"
    claims.claim_fetched([(t, 1, queue) for t in (kept, cancelled, paused)], "me")
    claims.set_cancel_flags([cancelled])

    assert claims.confirm_claim(kept, 1, queue, "me") is ClaimResult.CLAIMED
    assert claims.confirm_claim(cancelled, 1, queue, "me") is ClaimResult.CANCELLED
    claims.sync_pause_flags([queue], [queue])
    try:
        assert claims.confirm_claim(paused, 1, queue, "me") is ClaimResult.PAUSED
    finally:
        claims.sync_pause_flags([], [queue])
    # A claim given up can be made again (the attempt is handed back or re-sent).
    assert redis_client.get(claims.claim_key(cancelled, 1)) is None
    assert redis_client.get(claims.claim_key(paused, 1)) is None
    assert redis_client.get(claims.claim_key(kept, 1)) == b"me"
    # Someone else's claim is never confirmed as ours.
    assert claims.confirm_claim(kept, 1, queue, "not-me") is ClaimResult.DUPLICATE
