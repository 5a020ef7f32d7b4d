"""The dispatcher's decisions, one cycle at a time, in this process: which ready rows it moves to
``queued`` and sends, and which it leaves alone.

The database is real; the broker is a stub that records what each cycle hands to
``send_messages`` (no worker consumes anything here).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
import uuid

import pytest
import redis
from django.utils import timezone

from taskhub import schedule
from taskhub.conf import taskhub_settings
from taskhub.engine import claims, pause
from taskhub.engine.broker import get_redis, key
from taskhub.engine.claims import ClaimResult
from taskhub.engine.dispatcher import Dispatcher, queue_windows
from taskhub.models import QueueState, Task, TaskEvent, WorkerProcess

pytestmark = pytest.mark.django_db

# Queues of config/settings_test.py: "capped" allows 3 in flight, "rated" 5 starts a second,
# "default" has no cap.
CAPPED, CAP = "capped", 3
RATED, RATE = "rated", 5


@pytest.fixture
def sent(monkeypatch) -> list[dict]:
    """The envelopes the dispatcher hands to the broker, in the order it sends them."""
    envelopes: list[dict] = []

    def record(messages) -> None:
        envelopes.extend(m.args[0] for m in messages)

    monkeypatch.setattr("taskhub.engine.dispatcher.send_messages", record)
    return envelopes


@pytest.fixture(autouse=True)
def no_pause_flags_left_behind():
    """A cycle copies the database's pauses into Redis: clear them for the next test."""
    yield
    pause.sync_pause_flags([], [CAPPED, RATED, "default", "single"])


def cycle() -> list[dict]:
    """One dispatch cycle of a freshly started dispatcher (it looks at every queue)."""
    return [d.envelope for d in Dispatcher().dispatch_once()]


def live_worker(threads: int, queues: list[str] | None = None, *, beat_ago: float = 0.0):
    now = timezone.now()
    return WorkerProcess.objects.create(
        id=f"worker-{uuid.uuid4().hex[:8]}",
        hostname="here",
        pid=os.getpid(),
        queues=queues or [],
        threads=threads,
        started_at=now - dt.timedelta(seconds=beat_ago),
        last_heartbeat_at=now - dt.timedelta(seconds=beat_ago),
    )


def statuses(tasks: list[Task]) -> set[str]:
    return set(Task.objects.filter(id__in=[t.id for t in tasks]).values_list("status", flat=True))


def in_flight(queue: str) -> int:
    return Task.objects.filter(queue=queue, status__in=["queued", "running"]).count()


# -- windows ----------------------------------------------------------------------------------
def test_with_no_live_worker_a_queue_gets_the_minimum_window(sent):
    for _ in range(10):
        schedule("test.noop", {})

    dispatched = cycle()

    assert len(dispatched) == taskhub_settings.DISPATCH_MIN_WINDOW
    assert len(sent) == taskhub_settings.DISPATCH_MIN_WINDOW
    assert in_flight("default") == taskhub_settings.DISPATCH_MIN_WINDOW


def test_the_window_is_prefetch_times_the_live_threads_serving_the_queue(sent):
    live_worker(threads=3, queues=["default"])
    live_worker(threads=2)  # serves every queue
    live_worker(threads=50, queues=["single"])  # another queue's threads don't count
    live_worker(threads=50, beat_ago=10 * taskhub_settings.LIFELINE_TIMEOUT)  # long dead
    for _ in range(40):
        schedule("test.noop", {})

    dispatched = cycle()

    assert len(dispatched) == taskhub_settings.DISPATCH_PREFETCH * (3 + 2)
    # The window counts what is already in flight: the next cycle has no room.
    assert cycle() == []
    assert len(sent) == len(dispatched)


def test_a_window_grows_with_what_the_queue_drains_per_second_but_never_past_its_cap():
    workers = [live_worker(threads=4)]
    prefetch, buffer = taskhub_settings.DISPATCH_PREFETCH, taskhub_settings.DISPATCH_BUFFER_SECONDS

    windows = queue_windows(["default", CAPPED], workers, {"default": 100.0, CAPPED: 100.0})

    assert windows["default"] == prefetch * 4 + math.ceil(100 * buffer)
    assert windows[CAPPED] == CAP


# -- concurrency caps -------------------------------------------------------------------------
def test_a_capped_queue_never_has_more_than_its_cap_queued_and_running(sent):
    live_worker(threads=20)
    rows = [schedule("test.sleep_capped", {}) for _ in range(8)]
    Task.objects.filter(id=rows[0].id).update(status="running", attempt=1)
    Task.objects.filter(id=rows[1].id).update(status="queued", attempt=1)

    first = cycle()

    assert len(first) == CAP - 2
    assert in_flight(CAPPED) == CAP
    assert cycle() == []
    # A slot frees: exactly one more goes.
    Task.objects.filter(id=rows[0].id).update(status="completed")
    assert len(cycle()) == 1
    assert in_flight(CAPPED) == CAP
    assert all(e["queue"] == CAPPED for e in sent)


def test_a_cap_below_the_minimum_window_still_holds(sent):
    assert taskhub_settings.DISPATCH_MIN_WINDOW > 1  # "single" allows one in flight
    for _ in range(3):
        schedule("test.sleep_single", {})

    assert len(cycle()) == 1
    assert cycle() == []
    assert in_flight("single") == 1


def test_max_concurrent_tasks_caps_what_is_in_flight_across_every_queue(sent, settings):
    settings.TASKHUB = {**settings.TASKHUB, "MAX_CONCURRENT_TASKS": 4}
    live_worker(threads=20)
    running = schedule("test.noop", {})
    Task.objects.filter(id=running.id).update(status="running", attempt=1)
    for _ in range(5):
        schedule("test.noop", {})
        schedule("test.sleep_capped", {})

    first = cycle()

    assert len(first) == 3  # 4 in flight, counting the one already running
    assert in_flight("default") + in_flight(CAPPED) == 4
    assert cycle() == []
    # A slot frees in one queue: exactly one more goes, to whichever queue.
    Task.objects.filter(id=running.id).update(status="completed")
    assert len(cycle()) == 1
    assert in_flight("default") + in_flight(CAPPED) == 4


def test_under_max_concurrent_tasks_the_queues_take_the_freed_slots_in_turn(sent, settings):
    settings.TASKHUB = {**settings.TASKHUB, "MAX_CONCURRENT_TASKS": 1}
    live_worker(threads=20)
    for _ in range(3):
        schedule("test.noop", {})
        schedule("test.sleep_capped", {})
    dispatcher = Dispatcher()

    served = []
    for _ in range(6):
        (envelope,) = [d.envelope for d in dispatcher.dispatch_once()]
        served.append(envelope["queue"])
        Task.objects.filter(id=envelope["id"]).update(status="completed")

    assert served == [CAPPED, "default"] * 3


def test_without_max_concurrent_tasks_only_each_queues_cap_holds(sent):
    assert taskhub_settings.MAX_CONCURRENT_TASKS is None
    live_worker(threads=20)
    for _ in range(10):
        schedule("test.noop", {})
        schedule("test.sleep_capped", {})

    cycle()

    assert (in_flight("default"), in_flight(CAPPED)) == (10, CAP)


# -- paused queues ----------------------------------------------------------------------------
def test_nothing_of_a_paused_queue_is_dispatched_while_other_queues_flow(sent):
    live_worker(threads=4)
    capped = [schedule("test.sleep_capped", {}) for _ in range(2)]
    other = schedule("test.noop", {})
    QueueState.objects.create(name=CAPPED, paused=True)

    dispatched = cycle()

    assert [e["id"] for e in dispatched] == [str(other.id)]
    assert {t.status for t in Task.objects.filter(id__in=[t.id for t in capped])} == {"pending"}
    assert [e["queue"] for e in sent] == ["default"]
    # The cycle also raised the pause flag workers read before starting an attempt.
    assert get_redis().exists(pause.pause_key(CAPPED))

    QueueState.objects.filter(name=CAPPED).update(paused=False)
    assert sorted(e["id"] for e in cycle()) == sorted(str(t.id) for t in capped)


def ready_since(task: Task, when: dt.datetime) -> Task:
    Task.objects.filter(id=task.id).update(scheduled_at=when)
    return task


# -- order ------------------------------------------------------------------------------------
def test_higher_priority_goes_first_then_the_earlier_scheduled(sent):
    now = timezone.now()
    # (A past eta is stored as "now": the waiting times are set on the rows.)
    low = ready_since(schedule("test.noop", {}, priority=-10), now - dt.timedelta(hours=1))
    late_high = ready_since(schedule("test.noop", {}, priority=50), now - dt.timedelta(seconds=1))
    early_high = ready_since(schedule("test.noop", {}, priority=50), now - dt.timedelta(minutes=5))
    top = schedule("test.noop", {}, priority=90)
    normal = ready_since(schedule("test.noop", {}), now - dt.timedelta(minutes=30))

    order = []
    while batch := cycle():  # the minimum window (no live worker): two per cycle
        order += [e["id"] for e in batch]
        Task.objects.filter(id__in=[e["id"] for e in batch]).update(status="completed")

    expected = [top, early_high, late_high, normal, low]
    assert order == [str(t.id) for t in expected]
    # Within a cycle the wire carries the higher priority first too.
    assert [e["id"] for e in sent] == order


def test_with_priorities_off_the_longest_due_goes_first_whatever_its_priority(sent, settings):
    settings.TASKHUB = {**settings.TASKHUB, "ENABLE_PRIORITY": False}
    now = timezone.now()
    low = ready_since(schedule("test.noop", {}, priority=-10), now - dt.timedelta(hours=1))
    high = ready_since(schedule("test.noop", {}, priority=90), now - dt.timedelta(minutes=1))
    normal = ready_since(schedule("test.noop", {}), now - dt.timedelta(minutes=30))

    first = cycle()  # the minimum window: two of the three
    order = [e["id"] for e in first]
    Task.objects.filter(id__in=order).update(status="completed")
    order += [e["id"] for e in cycle()]

    assert order == [str(t.id) for t in (low, normal, high)]
    assert [e["id"] for e in sent] == order
    # The rows keep the priority they were given.
    assert Task.objects.get(id=high.id).priority == 90


def test_a_delayed_row_is_not_dispatched_before_its_time(sent):
    later = schedule("test.noop", {}, delay=60)
    now_due = schedule("test.noop", {})

    assert [e["id"] for e in cycle()] == [str(now_due.id)]
    later.refresh_from_db()
    assert later.status == "pending" and later.attempt == 0
    # The dispatcher knows when to look again: no later than its poll interval.
    assert 0 < Dispatcher().next_due_in() <= taskhub_settings.DISPATCH_POLL_INTERVAL

    Task.objects.filter(id=later.id).update(scheduled_at=timezone.now() - dt.timedelta(seconds=1))
    assert [e["id"] for e in cycle()] == [str(later.id)]


# -- the attempt ------------------------------------------------------------------------------
def test_dispatch_starts_a_new_attempt_and_records_it(sent):
    fresh = schedule("test.noop", {"n": 1})
    retried = schedule("test.fail_schedule", {})
    Task.objects.filter(id=retried.id).update(status="retrying", attempt=2)

    dispatched = {e["id"]: e for e in cycle()}

    fresh.refresh_from_db()
    retried.refresh_from_db()
    assert (fresh.status, fresh.attempt) == ("queued", 1)
    assert (retried.status, retried.attempt) == ("queued", 3)
    assert fresh.queued_at is not None
    assert dispatched[str(fresh.id)]["attempt"] == 1
    assert dispatched[str(fresh.id)]["payload"] == {"n": 1}
    assert dispatched[str(retried.id)]["attempt"] == 3
    assert dispatched[str(retried.id)]["max_attempts"] == retried.max_attempts
    queued_events = TaskEvent.objects.filter(kind="queued").values_list("task_id", "attempt")
    assert set(queued_events) == {(fresh.id, 1), (retried.id, 3)}


def test_a_row_already_queued_or_running_is_not_dispatched_again(sent):
    queued = schedule("test.noop", {})
    Task.objects.filter(id=queued.id).update(status="queued", attempt=1)
    running = schedule("test.noop", {})
    Task.objects.filter(id=running.id).update(status="running", attempt=1)

    assert cycle() == []
    assert sent == []


# -- rate limits ------------------------------------------------------------------------------
def test_a_rated_queue_sends_no_more_per_second_than_its_rate(sent):
    live_worker(threads=20)  # a window far above the rate
    for _ in range(3 * RATE):
        schedule("test.sleep_rated", {})
    # Spend part of the budget of every second this test may run in, so whichever second a
    # cycle runs in has exactly RATE - 3 left before it.
    seconds = range(int(time.time()) - 1, int(time.time()) + 30)
    client = get_redis()
    for second in seconds:
        client.set(key("rate", RATED, second), 3, ex=60)

    per_cycle = [len(cycle()) for _ in range(3)]

    assert per_cycle[0] == RATE - 3
    spent = [int(v) for v in client.mget([key("rate", RATED, s) for s in seconds])]
    assert max(spent) == RATE  # what a cycle sends is counted against its second
    assert sum(n - 3 for n in spent) == sum(per_cycle) == len(sent)
    # Cycles within one second share its budget: never more than RATE sent in a second.
    assert all(n <= RATE for n in spent)


# -- a refused send ---------------------------------------------------------------------------
def test_rows_whose_send_the_broker_refused_go_back_to_pending_and_their_attempt_is_retired(
    monkeypatch,
):
    def refuse(messages):
        raise redis.ConnectionError("broker away")

    monkeypatch.setattr("taskhub.engine.dispatcher.send_messages", refuse)
    task = schedule("test.noop", {})
    before = task.max_attempts

    with pytest.raises(redis.ConnectionError):
        Dispatcher().dispatch_once()

    task.refresh_from_db()
    # Back to pending, the attempt not charged: its limit moved up with it.
    assert (task.status, task.attempt, task.max_attempts) == ("pending", 1, before + 1)
    assert TaskEvent.objects.filter(task_id=task.id, kind="recovered", attempt=1).exists()
    # Had the message reached the broker after all, its copy would be dropped.
    assert claims.claim_attempt(str(task.id), 1, "default", "w") is ClaimResult.DUPLICATE


def test_within_one_cycle_the_wire_carries_equal_priorities_oldest_first(sent):
    live_worker(threads=10)  # a window that takes every row in one cycle
    now = timezone.now()
    # Inserted newest first, so the table's order is the opposite of the waiting order.
    rows = [
        ready_since(schedule("test.noop", {}), now - dt.timedelta(minutes=n)) for n in range(1, 9)
    ]

    cycle()

    assert [e["id"] for e in sent] == [str(t.id) for t in reversed(rows)]


def test_a_refused_send_returns_only_its_own_queues_rows_to_pending(monkeypatch):
    """The other queue's messages went out: its rows must stay queued for them."""
    delivered: list[str] = []

    def refuse_capped(messages):
        if messages[0].queue_name == CAPPED:
            raise redis.ConnectionError("capped's node away")
        delivered.extend(m.args[0]["id"] for m in messages)

    monkeypatch.setattr("taskhub.engine.dispatcher.send_messages", refuse_capped)
    live_worker(threads=4)
    capped = [schedule("test.sleep_capped", {}) for _ in range(2)]
    others = [schedule("test.noop", {}) for _ in range(2)]

    with pytest.raises(redis.ConnectionError):
        Dispatcher().dispatch_once()

    assert sorted(delivered) == sorted(str(t.id) for t in others)
    assert statuses(others) == {"queued"}
    assert statuses(capped) == {"pending"}
