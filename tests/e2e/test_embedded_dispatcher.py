"""`rundramatiq` is enough: worker units with EMBEDDED_DISPATCHER on and no dispatcher process run
scheduled tasks; one of them leads dispatching and the lifeline at a time
(taskhub/engine/leadership.py); when the leading unit is killed with SIGKILL, another takes over
within LIFELINE_TIMEOUT and recovers what the dead one held; a SIGSTOPped leader loses the lead
the same way. Queue control holds in that shape: the cap, pause and priority drills of
test_queue_control.py run again here on embedded stacks."""

import functools
import os
import signal
import time

import pytest
from django.db import connection

from taskhub import schedule, schedule_many
from taskhub.conf import taskhub_settings
from taskhub.engine.broker import get_redis, key
from taskhub.engine.leadership import current_leader
from taskhub.models import Task, TaskEvent, WorkerProcess
from tests.e2e import test_queue_control as queue_control
from tests.support import runs_of_an_every_2s_schedule, wait_all_finished, wait_for

pytestmark = [pytest.mark.e2e]


def completed(ids) -> int:
    return Task.objects.filter(id__in=ids, status="completed").count()


def leads(proc) -> int:
    """How many terms a worker unit's log says it led the dispatcher."""
    return proc.log_path.read_text(errors="replace").count("leads the dispatcher")


def test_worker_units_alone_run_tasks_and_a_killed_leader_is_replaced_in_time(make_stack):
    stack = make_stack(processes=1, threads=4, embedded=True)
    units = [stack.start_worker(), stack.start_worker()]
    stack.wait_for_workers(2, timeout=90)  # two boots at once, on a loaded machine
    assert stack.dispatchers == []

    # Ready now, and due later (the leader's cycle finds a delayed row when it comes due).
    ready = [t.id for t in schedule_many("test.sleep", [{"seconds": 0.02}] * 100)]
    delayed = [schedule("test.sleep", {"seconds": 0}, delay=1.5).id for _ in range(5)]
    wait_all_finished(ready + delayed, timeout=60)
    assert completed(ready + delayed) == 105

    leader_id = wait_for(current_leader, timeout=10, message="a leader")
    leader_pid = WorkerProcess.objects.get(id=leader_id).pid
    victim = next(u for u in units if leader_pid in stack.worker_children(u))
    survivor = next(u for u in units if u is not victim)
    assert leads(victim) == 1 and leads(survivor) == 0

    # Work in flight on both units when the leader dies: the dead one's must come back.
    held = [t.id for t in schedule_many("test.sleep", [{"seconds": 2}] * 12)]
    wait_for(
        lambda: Task.objects.filter(id__in=held, status="running", worker_id=leader_id).exists(),
        timeout=20,
        message="the leader unit to run some of them",
    )
    os.killpg(victim.pid, signal.SIGKILL)  # the whole unit: its main process and its worker
    killed_at = time.monotonic()
    after = [t.id for t in schedule_many("test.sleep", [{"seconds": 0.02}] * 50)]
    after += [schedule("test.sleep", {"seconds": 0}, delay=1).id for _ in range(5)]

    timeout = taskhub_settings.LIFELINE_TIMEOUT
    new_leader = wait_for(
        lambda: (leader := current_leader()) not in (None, leader_id) and leader,
        timeout=timeout,
        interval=0.02,
        message=f"another leader within LIFELINE_TIMEOUT ({timeout}s)",
    )
    took_over_in = time.monotonic() - killed_at
    assert WorkerProcess.objects.get(id=new_leader).pid in stack.worker_children(survivor)

    wait_all_finished(held + after, timeout=90)
    assert completed(held + after) == len(held) + len(after)
    lost = TaskEvent.objects.filter(task_id__in=held, kind="recovered", data__worker=leader_id)
    assert lost.exists()  # the new leader's lifeline returned the dead unit's attempts
    assert leads(survivor) >= 1
    print(f"\nembedded dispatcher: new leader {took_over_in:.1f}s after the kill, bound {timeout}s")


# SQLite has one write lock for the whole database: a leader stopped inside any write (its first
# dispatch cycles come right after it takes the lease) keeps every other process from writing,
# the standby's taking of the lease included, until it is continued — seen here: the standby led
# within milliseconds of the SIGCONT. docs/deployment.md states it; the guarantee is PostgreSQL's.
@pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite: a stopped writer holds the database's lock"
)
def test_a_sigstopped_leader_loses_the_lead_and_stands_by_when_continued(make_stack):
    """A stopped process keeps its connections (a lock held by one would stay held): the lease
    runs out instead, another unit leads, and the continued one finds it gone before its next
    cycle."""
    stack = make_stack(processes=1, threads=2, embedded=True)
    units = [stack.start_worker(), stack.start_worker()]
    stack.wait_for_workers(2, timeout=90)  # two boots at once, on a loaded machine
    leader_id = wait_for(current_leader, timeout=10, message="a leader")
    leader_pid = WorkerProcess.objects.get(id=leader_id).pid
    victim = next(u for u in units if leader_pid in stack.worker_children(u))

    os.killpg(victim.pid, signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        new_leader = wait_for(
            lambda: (leader := current_leader()) not in (None, leader_id) and leader,
            timeout=taskhub_settings.LIFELINE_TIMEOUT,
            interval=0.02,
            message="another leader while the first is stopped",
        )
        print(f"\nSIGSTOP: new leader {time.monotonic() - stopped_at:.1f}s after the stop")
        ids = [t.id for t in schedule_many("test.sleep", [{"seconds": 0.02}] * 20)]
    finally:
        os.killpg(victim.pid, signal.SIGCONT)
    wait_all_finished(ids, timeout=60)

    wait_for(
        lambda: "standing by" in victim.log_path.read_text(errors="replace"),
        timeout=10,
        message="the continued leader to stand by",
    )
    time.sleep(2 * taskhub_settings.LIFELINE_TIMEOUT / 2)  # two leases: it does not come back
    assert current_leader() == new_leader
    assert leads(victim) == 1


@pytest.fixture
def embedded_stack(make_stack):
    """A make_stack whose stacks are hosts with rundramatiq alone; the drills' Redis records
    (labels) cleared before and after, so neither run of a drill sees the other's."""

    def clear() -> None:
        client = get_redis()
        for name in client.scan_iter(match=key("test", "*"), count=1000):
            client.delete(name)

    clear()
    yield functools.partial(make_stack, embedded=True)
    clear()


def test_a_queue_cap_holds_with_worker_processes_dispatching(embedded_stack):
    queue_control.test_a_queue_cap_holds_across_worker_processes(embedded_stack)


def test_a_paused_queue_starts_nothing_with_worker_processes_dispatching(embedded_stack):
    queue_control.test_a_paused_queue_starts_nothing_and_resume_drains_it(embedded_stack)


def test_a_critical_task_overtakes_a_backlog_with_worker_processes_dispatching(embedded_stack):
    queue_control.test_a_critical_task_overtakes_a_backlog_of_low_ones(embedded_stack)


def test_worker_units_alone_fire_each_cron_slot_once_with_embedded_crons(make_stack):
    """EMBEDDED_SCHEDULER: no `runscheduler` and no dispatcher process. Both units poll the
    schedules; the database keeps each slot to one firing, and the fired tasks run."""
    from taskhub.scheduler import schedules

    stack = make_stack(
        processes=1, threads=2, embedded=True, env={"TASKHUB_EMBEDDED_SCHEDULER": "1"}
    )
    units = [stack.start_worker(), stack.start_worker()]
    stack.wait_for_workers(2, timeout=90)
    row = schedules.create_schedule("embedded-every-2s", "taskhub.ping", cron="*/2 * * * * *")

    runs = runs_of_an_every_2s_schedule(row, timeout=30)
    fired = [r.task_id for r in runs]
    wait_all_finished(fired, timeout=30)
    assert completed(fired) == len(fired)
    # Both units ran a scheduler: each log says it started one.
    logs = [u.log_path.read_text(errors="replace") for u in units]
    assert all("embedded scheduler started" in log for log in logs)
