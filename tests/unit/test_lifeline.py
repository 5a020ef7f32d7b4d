"""The lifeline's judgements, one run at a time, in this process: which workers it presumes dead,
which attempts it counts lost, which queued rows it sends again, and when it judges nothing.

The database and Redis are real; what the lifeline would send is captured (no worker consumes
anything here). tests/unit/test_lifeline_broker.py covers what it leaves in the Redis broker.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import uuid

import pytest
import redis
from django.utils import timezone
from redis.backoff import NoBackoff
from redis.retry import Retry

from taskhub import schedule
from taskhub.conf import taskhub_settings
from taskhub.engine import claims, redis_memory, transitions
from taskhub.engine.broker import get_redis
from taskhub.engine.dispatcher import Dispatcher
from taskhub.engine.lifeline import Lifeline, live_worker_ids
from taskhub.models import DeadLetter, Task, TaskEvent, WorkerProcess
from tests.support import watch_redis_long_enough

pytestmark = pytest.mark.django_db


@pytest.fixture
def resent(monkeypatch) -> list[dict]:
    """The envelopes the lifeline sends again."""
    envelopes: list[dict] = []
    monkeypatch.setattr(
        "taskhub.engine.lifeline.send_messages",
        lambda ms: envelopes.extend(m.args[0] for m in ms),
    )
    return envelopes


@pytest.fixture
def redis_just_lost_its_data():
    """What a FLUSHALL or a restart without persistence leaves: no watch marker."""
    get_redis().delete(redis_memory.marker_key())


def ago(seconds: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(seconds=seconds)


def worker(*, beat_ago: float, redis_key: bool = False) -> str:
    """A worker process row whose last database heartbeat was ``beat_ago`` seconds ago."""
    worker_id = f"w-{uuid.uuid4().hex[:10]}"
    WorkerProcess.objects.create(
        id=worker_id,
        hostname="elsewhere",
        pid=os.getpid(),
        queues=[],
        threads=2,
        started_at=ago(beat_ago + 60),
        last_heartbeat_at=ago(beat_ago),
    )
    if redis_key:
        get_redis().set(claims.liveness_key(worker_id), 1, ex=60)
    return worker_id


def long_dead() -> str:
    return worker(beat_ago=10 * taskhub_settings.LIFELINE_TIMEOUT)


def fresh() -> str:
    return worker(beat_ago=0)


def running(name: str, *, on: str, attempt: int = 1, **fields) -> Task:
    """A row running ``attempt`` on worker ``on``, last written long enough ago to be judged."""
    task = schedule(name, {})
    Task.objects.filter(id=task.id).update(
        status="running", attempt=attempt, worker_id=on, updated_at=ago(60), **fields
    )
    task.refresh_from_db()
    return task


def queued(name: str = "test.noop", *, waited: float, attempt: int = 1) -> Task:
    """A row queued for ``attempt`` ``waited`` seconds ago."""
    task = schedule(name, {})
    Task.objects.filter(id=task.id).update(status="queued", attempt=attempt, queued_at=ago(waited))
    task.refresh_from_db()
    return task


def stale() -> float:
    return 2 * taskhub_settings.REDISPATCH_AFTER


def status_of(task: Task) -> tuple[str, int]:
    task.refresh_from_db()
    return task.status, task.attempt


# -- lost running attempts --------------------------------------------------------------------
def test_a_dead_workers_running_attempt_goes_back_to_pending_with_the_attempt_counted(
    redis_kept_its_data, resent
):
    dead = long_dead()
    task = running("test.fail_schedule", on=dead, attempt=1)  # 3 attempts allowed

    report = Lifeline().run_once()

    assert report.dead_workers == [dead] and report.lost_attempts == 1
    assert status_of(task) == ("pending", 1)
    assert "worker lost" in task.error
    assert WorkerProcess.objects.get(id=dead).stopped_at is not None
    event = TaskEvent.objects.get(task_id=task.id, kind="recovered")
    assert (event.attempt, event.data["worker"]) == (1, dead)
    assert resent == []  # it waits for the dispatcher, which starts the next attempt
    assert status_of(task) == ("pending", 1)
    [envelope] = [d.envelope for d in Dispatcher().dispatch_once()]
    assert envelope["attempt"] == 2 and status_of(task) == ("queued", 2)


def test_a_lost_attempt_keeps_its_place_ahead_of_work_due_after_it(redis_kept_its_data, resent):
    """Sent to the back, a lost attempt waits behind every row that became due since it did:
    the chaos run's recoveries took up to 291 s behind a backlog of 10,000 rows."""
    task = running("test.fail_schedule", on=long_dead(), attempt=1)
    due_at = ago(120)
    Task.objects.filter(id=task.id).update(scheduled_at=due_at)
    later = [schedule("test.fail_schedule", {}) for _ in range(3)]  # due now, after it

    Lifeline().run_once()

    task.refresh_from_db()
    assert (task.status, task.scheduled_at) == ("pending", due_at)
    # The dispatcher's pick (highest priority, then longest due) takes it before the later ones.
    [picked] = transitions.mark_queued(task.queue, 1, timezone.now())
    assert uuid.UUID(str(picked[0])) == task.id
    assert all(status_of(t) == ("pending", 0) for t in later)


def test_a_lost_last_attempt_fails_the_task_with_a_dead_letter(redis_kept_its_data, resent):
    task = running("test.fail_schedule", on=long_dead(), attempt=3)  # its last

    report = Lifeline().run_once()

    assert report.failed == 1 and report.lost_attempts == 0
    assert status_of(task) == ("failed", 3)
    assert task.completed_at is not None
    letter = DeadLetter.objects.get(task_id=task.id)
    assert (letter.attempts, letter.task_name) == (3, "test.fail_schedule")
    kinds = set(TaskEvent.objects.filter(task_id=task.id, attempt=3).values_list("kind", flat=True))
    assert {"failed", "dead_lettered"} <= kinds


def test_a_lost_attempt_of_a_task_asked_to_stop_ends_cancelled(redis_kept_its_data, resent):
    task = running("test.fail_schedule", on=long_dead(), cancel_requested=True)

    Lifeline().run_once()

    assert status_of(task) == ("cancelled", 1)
    assert not DeadLetter.objects.filter(task_id=task.id).exists()


def test_an_attempt_just_marked_running_is_given_a_grace_before_it_is_judged(
    redis_kept_its_data, resent
):
    task = running("test.noop", on="not-registered-yet")
    Task.objects.filter(id=task.id).update(updated_at=timezone.now())

    Lifeline().run_once()

    assert status_of(task) == ("running", 1)


# -- who is alive -----------------------------------------------------------------------------
def test_a_worker_with_a_recent_database_heartbeat_is_never_judged_dead(
    redis_kept_its_data, resent
):
    """It has no liveness key in Redis (its Redis beat failed, or Redis is another one): the
    database heartbeat decides."""
    alive = fresh()
    task = running("test.noop", on=alive)
    claimed = queued(waited=stale())
    claims.claim_attempt(str(claimed.id), 1, "default", alive)

    report = Lifeline().run_once()

    assert not report
    assert status_of(task) == ("running", 1) and status_of(claimed) == ("queued", 1)
    assert WorkerProcess.objects.get(id=alive).stopped_at is None


def test_a_worker_whose_database_beats_lapsed_but_whose_redis_key_lives_is_alive(
    redis_kept_its_data, resent
):
    quiet = worker(beat_ago=3 * taskhub_settings.LIFELINE_TIMEOUT, redis_key=True)
    task = running("test.noop", on=quiet)

    report = Lifeline().run_once()

    assert quiet not in report.dead_workers
    assert status_of(task) == ("running", 1)


def test_a_worker_that_stopped_is_not_alive_however_recent_its_last_beat(
    redis_kept_its_data, resent
):
    """A clean shutdown that could not hand an attempt back (the database was away) leaves the
    row running under a stopped worker: it is lost, not waited for."""
    stopped = fresh()
    WorkerProcess.objects.filter(id=stopped).update(stopped_at=timezone.now())
    task = running("test.fail_schedule", on=stopped)

    report = Lifeline().run_once()

    assert report.lost_attempts == 1
    assert status_of(task) == ("pending", 1)


def test_while_redis_cannot_be_reached_no_worker_is_presumed_dead(monkeypatch):
    quiet = worker(beat_ago=3 * taskhub_settings.LIFELINE_TIMEOUT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    unreachable = redis.Redis(port=closed_port, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(redis_memory, "get_redis", lambda: unreachable)

    memory = redis_memory.observe()

    assert not memory.reachable and not memory.trusted
    assert quiet in live_worker_ids(timezone.now(), memory)
    monkeypatch.undo()
    # Seen again, Redis is watched afresh: what it lacks proves nothing yet.
    assert not redis_memory.observe().trusted


# -- queued rows ------------------------------------------------------------------------------
def test_a_stale_queued_row_nobody_claimed_is_sent_again_as_the_same_attempt(
    redis_kept_its_data, resent
):
    lost = queued(waited=stale(), attempt=2)
    recent = queued(waited=0)

    report = Lifeline().run_once()

    assert report.redispatched == 1
    assert [(e["id"], e["attempt"]) for e in resent] == [(str(lost.id), 2)]
    assert status_of(lost) == ("queued", 2) and status_of(recent) == ("queued", 1)
    assert resent[0]["payload"] == lost.payload and resent[0]["name"] == lost.name
    event = TaskEvent.objects.get(task_id=lost.id, kind="recovered")
    assert (event.attempt, event.data["reason"]) == (2, "message missing")
    # Its wait starts over: the next run leaves it alone.
    assert lost.queued_at > ago(5)
    assert Lifeline().run_once().redispatched == 0


def test_a_re_sent_message_is_the_dispatchers_envelope_coordinated_steps_included(
    redis_kept_its_data, resent
):
    """A child's (or a workflow step's) end must be settled by the coordinator: the re-sent
    message says so, as the dispatcher's first one did."""
    parent = schedule("test.noop", {})
    child = queued(waited=stale())
    plain = queued(waited=stale())
    Task.objects.filter(id=child.id).update(parent=parent)

    Lifeline().run_once()

    by_id = {e["id"]: e for e in resent}
    assert by_id[str(child.id)]["coordinated"] is True
    assert by_id[str(plain.id)]["coordinated"] is False
    assert set(by_id[str(plain.id)]) == set(by_id[str(child.id)])


@pytest.fixture
def redis_lost_its_data_a_while_ago(monkeypatch):
    """Redis lost its data (a FLUSHALL, a restart without persistence) LOST_AGO seconds ago,
    and has been watched for longer than LIFELINE_TIMEOUT since."""
    watch_redis_long_enough(monkeypatch, lambda real: time.time() - LOST_AGO)


LOST_AGO = 1.5 * 2 * taskhub_settings.REDISPATCH_AFTER  # between stale() and 2 * stale()


def test_a_queued_row_whose_claim_went_with_redis_data_has_that_attempt_retired_and_counted(
    redis_lost_its_data_a_while_ago, resent
):
    """Queued before the loss, unclaimed now: a worker killed after starting the attempt, before
    recording the start, may have run it — and its claim is gone with the data. The same attempt
    again could start twice (the 10-minute chaos run saw it): the next attempt runs instead."""
    before = queued(waited=2 * stale(), attempt=2)
    after = queued(waited=stale())  # queued since the loss: a missing claim means unclaimed

    report = Lifeline().run_once()

    assert report.lost_attempts == 1 and report.redispatched == 1
    assert [(e["id"], e["attempt"]) for e in resent] == [(str(after.id), 1)]
    assert status_of(before) == ("pending", 2) and status_of(after) == ("queued", 1)
    event = TaskEvent.objects.get(task_id=before.id, kind="recovered")
    assert (event.attempt, event.data["reason"]) == (2, "message lost with Redis's data")
    someone = fresh()
    assert (
        claims.claim_attempt(str(before.id), 2, "default", someone) == claims.ClaimResult.DUPLICATE
    )
    envelopes = {d.envelope["id"]: d.envelope for d in Dispatcher().dispatch_once()}
    assert envelopes[str(before.id)]["attempt"] == 3


def test_a_last_attempt_lost_with_redis_data_fails_the_task_with_a_dead_letter(
    redis_lost_its_data_a_while_ago, resent
):
    task = queued(waited=2 * stale())
    Task.objects.filter(id=task.id).update(max_attempts=1)

    report = Lifeline().run_once()

    assert report.failed == 1 and resent == []
    assert status_of(task) == ("failed", 1)
    assert "lost with Redis's data" in DeadLetter.objects.get(task_id=task.id).error


def test_a_row_from_before_the_loss_that_a_worker_claims_meanwhile_is_left_to_it(
    redis_lost_its_data_a_while_ago, resent, monkeypatch
):
    """Fetched between the lifeline's read of the claims and its retirement of them."""
    task = queued(waited=2 * stale())
    holder = fresh()
    retire = claims.retire_attempts

    def claimed_first(attempts):
        attempts = list(attempts)
        claims.claim_attempt(str(task.id), 1, "default", holder)
        return retire(attempts)

    monkeypatch.setattr(claims, "retire_attempts", claimed_first)

    report = Lifeline().run_once()

    assert not report and resent == []
    assert status_of(task) == ("queued", 1)
    assert claims.claim_holders([(task.id, 1)]) == [holder]


def test_a_queued_row_a_worker_retired_as_lost_with_redis_data_is_counted_lost(
    redis_kept_its_data, resent
):
    """RabbitMQ delivered its message again after Redis lost its data: the worker retired the
    attempt (taskhub.engine.claims.retire_if_lost) and the lifeline counts it lost."""
    task = queued(waited=stale())
    assert claims.retire_if_lost(str(task.id), 1, int(time.time() * 1000) - 3_600_000)

    report = Lifeline().run_once()

    assert report.lost_attempts == 1 and resent == []
    assert status_of(task) == ("pending", 1)
    event = TaskEvent.objects.get(task_id=task.id, kind="recovered")
    assert (event.attempt, event.data["reason"]) == (1, "message lost with Redis's data")


def test_redis_first_looked_at_by_the_dispatcher_holds_its_data_from_before_its_first_send():
    """A new Redis is no data loss: the messages the dispatcher sends after looking at it are
    younger than its data, so their attempts are never retired as lost with it."""
    get_redis().delete(redis_memory.kept_key(), redis_memory.marker_key())
    first = redis_memory.observe()
    assert first.kept_since is not None and first.kept_since <= time.time()
    get_redis().delete(redis_memory.marker_key())  # the watch starts over...
    redis_memory.lost_sight()
    assert redis_memory.observe().kept_since == first.kept_since  # ...the data was kept
    get_redis().delete(redis_memory.kept_key())  # a flush takes both
    assert redis_memory.observe().kept_since > first.kept_since


def test_an_attempt_a_worker_holds_is_not_retired(redis_kept_its_data):
    task = queued(waited=stale())
    claims.claim_attempt(str(task.id), 1, "default", fresh())

    assert claims.retire_attempts([(task.id, 1)]) == [False]
    assert claims.claim_holders([(task.id, 1)]) != [claims.RETIRED]


def test_a_queued_row_claimed_by_a_dead_worker_goes_back_to_pending(redis_kept_its_data, resent):
    dead = long_dead()
    task = queued(waited=stale())
    claims.claim_attempt(str(task.id), 1, "default", dead)

    report = Lifeline().run_once()

    assert report.lost_attempts == 1 and resent == []
    assert status_of(task) == ("pending", 1)
    event = TaskEvent.objects.get(task_id=task.id, kind="recovered")
    assert event.data["worker"] == dead


def test_a_queued_row_claimed_by_a_live_worker_is_left_alone(redis_kept_its_data, resent):
    task = queued(waited=stale())
    claims.claim_attempt(str(task.id), 1, "default", fresh())

    assert not Lifeline().run_once()
    assert status_of(task) == ("queued", 1) and resent == []


def test_cancel_flags_redis_lost_are_raised_again_from_the_rows(redis_kept_its_data, resent):
    """A running attempt must still see its cancel after Redis lost the flag."""
    task = running("test.noop", on=fresh(), attempt=2, cancel_requested=True)
    get_redis().delete(claims.cancel_key(str(task.id)))

    Lifeline().run_once()

    assert claims.is_cancel_requested(str(task.id), 2)
    assert not claims.is_cancel_requested(str(task.id), 3)  # a later attempt is not covered
    assert status_of(task) == ("running", 2)


# -- Redis's memory ---------------------------------------------------------------------------
def test_right_after_redis_lost_its_data_a_missing_claim_is_no_reason_to_send_again(
    redis_just_lost_its_data, resent
):
    """The claim may be one a live worker has not had its turn to re-assert yet."""
    task = queued(waited=stale())

    report = Lifeline().run_once()

    assert report.redispatched == 0 and resent == []
    assert status_of(task) == ("queued", 1)


def test_keys_read_after_redis_lost_its_data_within_the_same_run_are_not_judged_from():
    memory = redis_memory.observe()
    claim = claims.claim_key(str(uuid.uuid4()), 1)
    get_redis().set(claim, "someone", ex=60)
    assert memory.read([claim]) == [b"someone"]

    get_redis().delete(redis_memory.marker_key())  # lost between the look and the read

    assert memory.read([claim]) is None


def test_the_watch_restarts_after_the_lifeline_lost_sight_of_redis():
    first = redis_memory.observe()
    assert redis_memory.observe().since == first.since  # still the same watch

    redis_memory.lost_sight()
    again = redis_memory.observe()

    assert again.since != first.since and again.age < 1.0
