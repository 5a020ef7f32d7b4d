"""Real scheduler processes: two of them fire each slot exactly once; edits apply at runtime."""

import subprocess
import sys
import time

import pytest

from taskhub.models import ScheduleRun, Task, TaskSchedule
from taskhub.scheduler import schedules
from tests.support import ROOT, child_env, runs_of_an_every_2s_schedule, wait_for

pytestmark = [pytest.mark.e2e]


def spawn(*argv, log_name="scheduler"):
    log_dir = ROOT / "var" / "test-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"{log_name}-{time.time_ns()}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *argv],
        cwd=ROOT,
        env=child_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture(scope="module")
def schedulers(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        procs = [spawn("runscheduler"), spawn("runscheduler")]
        # Both have synced the declared crons once this row exists.
        wait_for(
            lambda: TaskSchedule.objects.filter(name="taskhub.prune").exists(),
            timeout=60,
            message="the schedulers to start",
        )
        time.sleep(1)
    yield procs
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def two_schedulers(schedulers, transactional_db):
    assert all(p.poll() is None for p in schedulers)
    return schedulers


def test_a_cron_added_from_the_command_line_fires_each_slot_exactly_once_with_two_schedulers(
    two_schedulers,
):
    added = subprocess.run(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "taskhub",
            "schedule-add",
            "every-2s",
            "--task",
            "taskhub.ping",
            "--cron",
            "*/2 * * * * *",
        ],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    row = TaskSchedule.objects.get(name="every-2s")

    runs = runs_of_an_every_2s_schedule(row, timeout=20)
    slots = [r.slot for r in runs]
    assert all(s.second % 2 == 0 and s.microsecond == 0 for s in slots)
    tasks = Task.objects.filter(correlation_id="schedule:every-2s")
    assert tasks.count() == len(runs)
    assert set(tasks.values_list("id", flat=True)) == {r.task_id for r in runs}


def test_a_schedule_edited_at_runtime_fires_at_its_new_time_without_a_restart(two_schedulers):
    row = schedules.create_schedule("yearly", "taskhub.ping", cron="0 0 1 1 *")
    time.sleep(1.5)
    assert not ScheduleRun.objects.filter(schedule=row).exists()

    edited = schedules.update_schedule("yearly", cron="* * * * * *")

    run = wait_for(
        lambda: ScheduleRun.objects.filter(schedule=row).first(),
        timeout=5,
        interval=0.1,
        message="the edited schedule to fire",
    )
    assert run.slot >= edited.next_run_at
    assert Task.objects.filter(id=run.task_id).exists()
