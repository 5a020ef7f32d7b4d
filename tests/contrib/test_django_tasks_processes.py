"""Django tasks through worker crashes, graceful stops and several worker processes (the process
cases of django-tasks-db, where a killed worker leaves a task RUNNING forever — here the lifeline
runs it again)."""

import signal

import pytest

from taskhub.contrib.django_tasks.compat import TaskResultStatus
from taskhub.contrib.django_tasks.results import WorkerLost
from taskhub.models import DeadLetter, TaskEvent
from tests.contrib import djtasks
from tests.contrib.test_django_tasks_workers import recorded, wait_finished
from tests.support import Stack, wait_for

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def fresh_stack(transactional_db):
    stacks = []

    def start(**kwargs):
        stack = Stack(**kwargs).start()
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.stop()


def wait_running(result, timeout=15):
    def running():
        result.refresh()
        return result.status == TaskResultStatus.RUNNING

    wait_for(running, timeout=timeout, message=f"{result.id} to run")


@pytest.mark.slow
def test_a_task_whose_worker_is_killed_runs_again_within_the_lifeline_bound(fresh_stack):
    stack = fresh_stack(processes=1, threads=2)
    result = djtasks.slow_once.enqueue(seconds=30)
    wait_running(result)

    stack.kill9_worker_process()
    stack.start_worker()
    wait_finished(result, timeout=30)

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 2 and result.attempts == 2
    assert len(set(result.worker_ids)) == 2
    assert recorded("slow_once") == [result.id, result.id]


@pytest.mark.slow
def test_a_task_without_retries_whose_worker_is_killed_fails_with_worker_lost(fresh_stack):
    stack = fresh_stack(processes=1, threads=2)
    result = djtasks.sleep_for.enqueue(30)
    wait_running(result)

    stack.kill9_worker_process()
    wait_finished(result, timeout=30)

    assert result.status == TaskResultStatus.FAILED
    assert result.errors[-1].exception_class is WorkerLost
    assert DeadLetter.objects.filter(task_id=result.id).exists()


def test_a_graceful_stop_lets_the_running_task_finish(fresh_stack):
    stack = fresh_stack(processes=1, threads=2)
    result = djtasks.sleep_for.enqueue(1.5)
    wait_running(result)

    worker = stack.workers[0]
    # To the main process only, as systemd's KillMode=mixed does: Dramatiq forwards it to its
    # worker processes, and a second SIGTERM (from signalling the whole group) would kill them.
    worker.send_signal(signal.SIGTERM)
    worker.wait(20)

    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.attempts == 1


def test_several_worker_processes_start_each_task_exactly_once(fresh_stack):
    fresh_stack(processes=2, threads=4)
    results = [djtasks.sleep_for.enqueue(0.05) for _ in range(40)]

    for result in results:
        wait_finished(result, timeout=30)

    assert {r.status for r in results} == {TaskResultStatus.SUCCESSFUL}
    assert all(r.attempts == 1 for r in results)
    starts = TaskEvent.objects.filter(task_id__in=[r.id for r in results], kind="started")
    assert starts.count() == 40
    assert len({r.worker_ids[0] for r in results}) == 2
