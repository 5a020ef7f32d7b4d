"""Cron expressions and slot arithmetic: APScheduler's triggers, cron's weekday numbering."""

import datetime as dt

import pytest

from taskhub.scheduler.cron import (
    EVERY_5_MINUTES,
    EVERY_DAY_AT_MIDNIGHT,
    EVERY_WEEK,
    InvalidSchedule,
    ScheduleSpec,
    build_trigger,
    cron_trigger,
    fire_after,
    latest_slot,
)

UTC = dt.UTC


def at(*args):
    return dt.datetime(*args, tzinfo=UTC)


def test_every_5_minutes_fires_on_the_next_multiple_of_five():
    assert fire_after(cron_trigger(EVERY_5_MINUTES), at(2025, 1, 1, 10, 2, 30)) == at(
        2025, 1, 1, 10, 5
    )


def test_a_slot_is_strictly_after_the_given_moment():
    assert fire_after(cron_trigger(EVERY_5_MINUTES), at(2025, 1, 1, 10, 5)) == at(
        2025, 1, 1, 10, 10
    )


def test_six_fields_put_seconds_first():
    trigger = cron_trigger("*/10 * * * * *")
    assert fire_after(trigger, at(2025, 1, 1, 10, 0, 3)) == at(2025, 1, 1, 10, 0, 10)


def test_weekday_zero_is_sunday_as_in_cron_not_monday_as_in_apscheduler_3():
    # 2025-01-01 is a Wednesday; the next Sunday is the 5th.
    assert fire_after(cron_trigger(EVERY_WEEK), at(2025, 1, 1)) == at(2025, 1, 5)
    assert fire_after(cron_trigger("0 9 * * 1-5"), at(2025, 1, 4)) == at(2025, 1, 6, 9)
    assert fire_after(cron_trigger("0 9 * * 7"), at(2025, 1, 1)) == at(2025, 1, 5, 9)
    assert fire_after(cron_trigger("0 9 * * */2"), at(2025, 1, 5, 10)) == at(2025, 1, 7, 9)
    assert fire_after(cron_trigger("0 9 * * mon"), at(2025, 1, 1)) == at(2025, 1, 6, 9)


def test_a_timezone_moves_midnight():
    trigger = cron_trigger(EVERY_DAY_AT_MIDNIGHT, "Europe/Berlin")
    assert fire_after(trigger, at(2025, 1, 1, 12)) == at(2025, 1, 1, 23)


@pytest.mark.parametrize(
    ("expression", "zone"),
    [("* * * *", "UTC"), ("61 * * * *", "UTC"), ("* * * * 9", "UTC"), ("* * * * *", "Mars/Base")],
)
def test_bad_expressions_and_zones_are_refused(expression, zone):
    with pytest.raises(InvalidSchedule):
        cron_trigger(expression, zone)


def test_interval_slots_count_from_the_anchor_so_every_process_agrees():
    trigger = build_trigger(ScheduleSpec(interval=60, anchor=at(2025, 1, 1, 0, 0, 30)))
    assert fire_after(trigger, at(2025, 1, 1, 5, 0, 0)) == at(2025, 1, 1, 5, 0, 30)


def test_missed_slots_coalesce_into_the_latest_within_grace():
    trigger = cron_trigger("* * * * *")
    slot = latest_slot(trigger, at(2025, 1, 1, 10, 0), at(2025, 1, 1, 10, 5, 20), grace=3600)
    assert slot == at(2025, 1, 1, 10, 5)


def test_slots_older_than_grace_are_not_fired():
    trigger = cron_trigger("0 * * * *")
    assert latest_slot(trigger, at(2025, 1, 1, 10), at(2025, 1, 1, 10, 30), grace=60) is None
