"""Stored schedules fire as tasks: once per slot, coalesced after downtime, editable at runtime."""

import datetime as dt
import json

import pytest
from django.core.management import call_command
from django.db import IntegrityError
from django.utils import timezone

from taskhub.errors import UnknownTask
from taskhub.models import RunStatus, ScheduleRun, Task, TaskSchedule
from taskhub.scheduler import schedules
from taskhub.scheduler.cron import InvalidSchedule, declare, undeclare
from taskhub.scheduler.runner import tick
from taskhub.scheduler.runs import record_run, refresh_run_outcomes
from taskhub.scheduler.schedules import sync_declared_schedules

pytestmark = pytest.mark.django_db


def minutes(n):
    return dt.timedelta(minutes=n)


def test_a_due_cron_schedule_fires_its_task_once_and_moves_to_the_next_slot():
    row = schedules.create_schedule("ping", "taskhub.ping", cron="*/5 * * * *")
    slot = row.next_run_at

    report = tick(slot + dt.timedelta(seconds=1))
    again = tick(slot + dt.timedelta(seconds=2))

    run = ScheduleRun.objects.get(schedule=row)
    assert (report.fired, again.fired) == (1, 0)
    assert run.slot == slot and run.status == "pending"
    task = Task.objects.get(id=run.task_id)
    assert task.name == "taskhub.ping" and task.correlation_id == "schedule:ping"
    row.refresh_from_db()
    assert row.next_run_at == slot + minutes(5)
    assert row.last_run_at == slot and row.last_task_id == task.id


def test_a_schedule_is_not_fired_before_its_slot():
    row = schedules.create_schedule("ping", "taskhub.ping", cron="*/5 * * * *")

    assert tick(row.next_run_at - dt.timedelta(seconds=1)).fired == 0
    assert not ScheduleRun.objects.exists()


def test_after_downtime_missed_slots_coalesce_into_one_run_of_the_latest_slot():
    row = schedules.create_schedule("ping", "taskhub.ping", cron="* * * * *")
    first_missed = row.next_run_at
    now = first_missed + minutes(5) + dt.timedelta(seconds=20)  # six slots missed

    report = tick(now)

    assert report.fired == 1
    run = ScheduleRun.objects.get(schedule=row)
    assert run.slot == first_missed + minutes(5)
    row.refresh_from_db()
    assert row.next_run_at == first_missed + minutes(6)


@pytest.mark.django_db
def test_slots_missed_by_more_than_the_grace_are_recorded_as_skipped_not_run(settings):
    settings.TASKHUB = {**settings.TASKHUB, "SCHEDULER_GRACE": 60}
    row = schedules.create_schedule("hourly", "taskhub.ping", cron="0 * * * *")

    tick(row.next_run_at + minutes(30))

    run = ScheduleRun.objects.get(schedule=row)
    assert run.status == RunStatus.SKIPPED and run.task_id is None
    assert "grace" in run.error
    assert not Task.objects.exists()


def test_the_same_slot_can_never_be_recorded_twice():
    row = schedules.create_schedule("ping", "taskhub.ping", cron="* * * * *")
    record_run(row, row.next_run_at, "schedule")

    with pytest.raises(IntegrityError):
        record_run(row, row.next_run_at, "schedule")
    assert Task.objects.count() == 1


def test_editing_a_schedule_changes_its_next_fire_at_once():
    row = schedules.create_schedule("report", "taskhub.ping", cron="0 0 1 1 *")
    assert row.next_run_at - timezone.now() > dt.timedelta(days=1) or row.next_run_at.month == 1

    edited = schedules.update_schedule("report", cron="* * * * * *")

    assert edited.next_run_at - timezone.now() <= dt.timedelta(seconds=1)


def test_a_disabled_schedule_never_fires_and_re_enabling_does_not_catch_up():
    row = schedules.create_schedule("ping", "taskhub.ping", cron="* * * * *")
    schedules.disable_schedule("ping")

    assert tick(row.next_run_at + minutes(10)).fired == 0
    enabled = schedules.enable_schedule("ping")
    assert enabled.next_run_at > timezone.now()


def test_interval_and_one_off_schedules_fire_too():
    every = schedules.create_schedule("every-30s", "taskhub.ping", interval=30)
    once = schedules.create_schedule(
        "once", "taskhub.ping", run_at=timezone.now() + dt.timedelta(seconds=5)
    )
    assert dt.timedelta(0) < every.next_run_at - timezone.now() <= dt.timedelta(seconds=30)

    tick(timezone.now() + dt.timedelta(seconds=31))

    assert ScheduleRun.objects.filter(schedule=every).count() == 1
    assert ScheduleRun.objects.filter(schedule=once).count() == 1
    once.refresh_from_db()
    assert once.next_run_at is None
    tick(timezone.now() + dt.timedelta(days=1))
    assert ScheduleRun.objects.filter(schedule=once).count() == 1


def test_run_now_schedules_the_task_without_moving_the_regular_slots():
    row = schedules.create_schedule("ping", "taskhub.ping", cron="0 0 * * *")

    run = schedules.run_now("ping")

    assert run.trigger == "manual" and Task.objects.filter(id=run.task_id).exists()
    row.refresh_from_db()
    assert row.next_run_at == schedules.get_schedule("ping").next_run_at
    assert row.last_task_id == run.task_id


def test_a_run_shows_its_task_outcome():
    row = schedules.create_schedule("ping", "taskhub.ping", cron="* * * * *")
    run = schedules.run_now("ping")
    Task.objects.filter(id=run.task_id).update(status="completed")

    refresh_run_outcomes()

    run.refresh_from_db()
    row.refresh_from_db()
    assert run.status == "completed" and row.last_status == "completed"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"task": "no.such.task", "cron": "* * * * *"}, UnknownTask),
        ({"task": "taskhub.ping", "cron": "* * *"}, InvalidSchedule),
        (
            {"task": "taskhub.ping", "cron": "* * * * *", "timezone_name": "Nowhere/x"},
            InvalidSchedule,
        ),
        ({"task": "taskhub.ping", "cron": "* * * * *", "interval": 5}, InvalidSchedule),
        ({"task": "taskhub.ping", "interval": 0.5}, InvalidSchedule),
        ({"task": "test.sleep", "cron": "* * * * *", "payload": {"seconds": -1}}, Exception),
    ],
)
def test_an_invalid_schedule_is_refused_and_nothing_is_stored(kwargs, error):
    task = kwargs.pop("task")
    with pytest.raises(error):
        schedules.create_schedule("bad", task, **kwargs)
    assert not TaskSchedule.objects.exists()


def test_a_task_that_disappeared_is_recorded_as_a_run_error():
    row = schedules.create_schedule("ping", "taskhub.ping", cron="* * * * *")
    TaskSchedule.objects.filter(id=row.id).update(task_name="gone.task")

    tick(row.next_run_at + dt.timedelta(seconds=1))

    run = ScheduleRun.objects.get(schedule=row)
    assert run.status == RunStatus.ERROR and "gone.task" in run.error


def test_crons_declared_in_code_are_synced_and_can_be_disabled_but_not_edited():
    declare("test.declared", "taskhub.ping", cron="*/10 * * * *")
    try:
        sync_declared_schedules()
        row = TaskSchedule.objects.get(name="test.declared")
        assert row.source == "code" and row.cron == "*/10 * * * *"
        assert TaskSchedule.objects.filter(name="taskhub.prune").exists()
        assert TaskSchedule.objects.filter(name="webhooks.retry_due", interval_seconds=300).exists()

        with pytest.raises(InvalidSchedule):
            schedules.update_schedule("test.declared", cron="* * * * *")
        schedules.disable_schedule("test.declared")
        sync_declared_schedules()
        assert TaskSchedule.objects.get(name="test.declared").enabled is False
    finally:
        undeclare("test.declared")
    sync_declared_schedules()
    assert not TaskSchedule.objects.filter(name="test.declared").exists()


def test_the_command_line_adds_lists_and_runs_schedules(capsys):
    call_command(
        "taskhub",
        "schedule-add",
        "every-5",
        "--task",
        "taskhub.ping",
        "--cron",
        "*/5 * * * *",
        "--payload",
        "{}",
        "--timezone",
        "UTC",
    )
    assert capsys.readouterr().out.startswith("every-5 next run ")

    call_command("taskhub", "run-now", "every-5")
    task_id = capsys.readouterr().out.strip()
    call_command("taskhub", "schedules", "--json")
    listing = {s["name"]: s for s in json.loads(capsys.readouterr().out)}

    assert Task.objects.get(id=task_id).name == "taskhub.ping"
    every5 = listing["every-5"]
    assert every5["cron"] == "*/5 * * * *" and every5["enabled"] is True
    assert every5["next_run_at"] is not None
    assert [(r["task_id"], r["trigger"]) for r in every5["runs"]] == [(task_id, "manual")]
    assert "taskhub.prune" in listing  # the built-in crons are listed too


def test_the_command_line_refuses_a_bad_cron_with_exit_code_2():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as caught:
        call_command("taskhub", "schedule-add", "x", "--task", "taskhub.ping", "--cron", "* *")
    assert caught.value.returncode == 2
    assert not TaskSchedule.objects.filter(name="x").exists()
