"""Cron expressions and slot arithmetic: APScheduler's triggers, cron's weekday numbering."""

import datetime as dt

import pytest

from taskhub.scheduler.cron import (
    EVERY_5_MINUTES,
    EVERY_DAY_AT_MIDNIGHT,
    EVERY_WEEK,
    CronExpression,
    InvalidSchedule,
    ScheduleSpec,
    build_trigger,
    cron_trigger,
    declare,
    fire_after,
    latest_slot,
    undeclare,
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


# @nestjs/schedule's CronExpression (6.1.2, lib/enums/cron-expression.enum.ts): the names and cron
# strings a NestJS service's schedules use (the Open SSO scheduling document's constants).
NESTJS_CRON_EXPRESSIONS = {
    "EVERY_SECOND": "* * * * * *",
    "EVERY_5_SECONDS": "*/5 * * * * *",
    "EVERY_10_SECONDS": "*/10 * * * * *",
    "EVERY_30_SECONDS": "*/30 * * * * *",
    "EVERY_MINUTE": "*/1 * * * *",
    "EVERY_5_MINUTES": "0 */5 * * * *",
    "EVERY_10_MINUTES": "0 */10 * * * *",
    "EVERY_30_MINUTES": "0 */30 * * * *",
    "EVERY_HOUR": "0 0-23/1 * * *",
    "EVERY_2_HOURS": "0 0-23/2 * * *",
    "EVERY_3_HOURS": "0 0-23/3 * * *",
    "EVERY_4_HOURS": "0 0-23/4 * * *",
    "EVERY_5_HOURS": "0 0-23/5 * * *",
    "EVERY_6_HOURS": "0 0-23/6 * * *",
    "EVERY_7_HOURS": "0 0-23/7 * * *",
    "EVERY_8_HOURS": "0 0-23/8 * * *",
    "EVERY_9_HOURS": "0 0-23/9 * * *",
    "EVERY_10_HOURS": "0 0-23/10 * * *",
    "EVERY_11_HOURS": "0 0-23/11 * * *",
    "EVERY_12_HOURS": "0 0-23/12 * * *",
    "EVERY_DAY_AT_1AM": "0 01 * * *",
    "EVERY_DAY_AT_2AM": "0 02 * * *",
    "EVERY_DAY_AT_3AM": "0 03 * * *",
    "EVERY_DAY_AT_4AM": "0 04 * * *",
    "EVERY_DAY_AT_5AM": "0 05 * * *",
    "EVERY_DAY_AT_6AM": "0 06 * * *",
    "EVERY_DAY_AT_7AM": "0 07 * * *",
    "EVERY_DAY_AT_8AM": "0 08 * * *",
    "EVERY_DAY_AT_9AM": "0 09 * * *",
    "EVERY_DAY_AT_10AM": "0 10 * * *",
    "EVERY_DAY_AT_11AM": "0 11 * * *",
    "EVERY_DAY_AT_NOON": "0 12 * * *",
    "EVERY_DAY_AT_1PM": "0 13 * * *",
    "EVERY_DAY_AT_2PM": "0 14 * * *",
    "EVERY_DAY_AT_3PM": "0 15 * * *",
    "EVERY_DAY_AT_4PM": "0 16 * * *",
    "EVERY_DAY_AT_5PM": "0 17 * * *",
    "EVERY_DAY_AT_6PM": "0 18 * * *",
    "EVERY_DAY_AT_7PM": "0 19 * * *",
    "EVERY_DAY_AT_8PM": "0 20 * * *",
    "EVERY_DAY_AT_9PM": "0 21 * * *",
    "EVERY_DAY_AT_10PM": "0 22 * * *",
    "EVERY_DAY_AT_11PM": "0 23 * * *",
    "EVERY_DAY_AT_MIDNIGHT": "0 0 * * *",
    "EVERY_WEEK": "0 0 * * 0",
    "EVERY_WEEKDAY": "0 0 * * 1-5",
    "EVERY_WEEKEND": "0 0 * * 6,0",
    "EVERY_1ST_DAY_OF_MONTH_AT_MIDNIGHT": "0 0 1 * *",
    "EVERY_1ST_DAY_OF_MONTH_AT_NOON": "0 12 1 * *",
    "EVERY_2ND_HOUR": "0 */2 * * *",
    "EVERY_2ND_HOUR_FROM_1AM_THROUGH_11PM": "0 1-23/2 * * *",
    "EVERY_2ND_MONTH": "0 0 1 */2 *",
    "EVERY_QUARTER": "0 0 1 */3 *",
    "EVERY_6_MONTHS": "0 0 1 */6 *",
    "EVERY_YEAR": "0 0 1 1 *",
    "EVERY_30_MINUTES_BETWEEN_9AM_AND_5PM": "0 */30 9-17 * * *",
    "EVERY_30_MINUTES_BETWEEN_9AM_AND_6PM": "0 */30 9-18 * * *",
    "EVERY_30_MINUTES_BETWEEN_10AM_AND_7PM": "0 */30 10-19 * * *",
    "MONDAY_TO_FRIDAY_AT_1AM": "0 0 01 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_2AM": "0 0 02 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_3AM": "0 0 03 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_4AM": "0 0 04 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_5AM": "0 0 05 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_6AM": "0 0 06 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_7AM": "0 0 07 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_8AM": "0 0 08 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_9AM": "0 0 09 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_09_30AM": "0 30 09 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_10AM": "0 0 10 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_11AM": "0 0 11 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_11_30AM": "0 30 11 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_12PM": "0 0 12 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_1PM": "0 0 13 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_2PM": "0 0 14 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_3PM": "0 0 15 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_4PM": "0 0 16 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_5PM": "0 0 17 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_6PM": "0 0 18 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_7PM": "0 0 19 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_8PM": "0 0 20 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_9PM": "0 0 21 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_10PM": "0 0 22 * * 1-5",
    "MONDAY_TO_FRIDAY_AT_11PM": "0 0 23 * * 1-5",
}


def test_every_nestjs_cron_expression_exists_with_the_same_string_and_parses():
    from taskhub.scheduler import cron as module

    missing = sorted(set(NESTJS_CRON_EXPRESSIONS) - {m.name for m in CronExpression})
    assert not missing
    for name, expression in NESTJS_CRON_EXPRESSIONS.items():
        assert CronExpression[name] == expression, name
        assert getattr(module, name) == expression, name  # the module constant too
        trigger = build_trigger(ScheduleSpec(cron=CronExpression[name]))
        assert fire_after(trigger, at(2025, 1, 1)) is not None, name


@pytest.mark.parametrize(
    ("name", "after", "expected"),
    [
        ("EVERY_5_SECONDS", at(2025, 1, 1, 10, 0, 3), at(2025, 1, 1, 10, 0, 5)),
        ("EVERY_30_SECONDS", at(2025, 1, 1, 10, 0, 30), at(2025, 1, 1, 10, 1)),
        ("EVERY_MINUTE", at(2025, 1, 1, 10, 0, 1), at(2025, 1, 1, 10, 1)),
        ("EVERY_10_MINUTES", at(2025, 1, 1, 10, 0, 1), at(2025, 1, 1, 10, 10)),
        ("EVERY_HOUR", at(2025, 1, 1, 10, 0), at(2025, 1, 1, 11)),
        ("EVERY_5_HOURS", at(2025, 1, 1, 20), at(2025, 1, 2, 0)),  # 0, 5, 10, 15, 20 each day
        ("EVERY_DAY_AT_1AM", at(2025, 1, 1, 1, 0, 1), at(2025, 1, 2, 1)),
        ("EVERY_DAY_AT_11PM", at(2025, 1, 1, 12), at(2025, 1, 1, 23)),
        ("EVERY_WEEK", at(2025, 1, 1), at(2025, 1, 5)),  # Wednesday → Sunday
        ("EVERY_WEEKDAY", at(2025, 1, 4), at(2025, 1, 6)),  # Saturday → Monday
        ("EVERY_WEEKEND", at(2025, 1, 1), at(2025, 1, 4)),  # Wednesday → Saturday
        ("EVERY_1ST_DAY_OF_MONTH_AT_NOON", at(2025, 1, 1, 12), at(2025, 2, 1, 12)),
        ("EVERY_2ND_HOUR_FROM_1AM_THROUGH_11PM", at(2025, 1, 1, 23), at(2025, 1, 2, 1)),
        ("EVERY_2ND_MONTH", at(2025, 1, 1), at(2025, 3, 1)),
        ("EVERY_QUARTER", at(2025, 1, 1), at(2025, 4, 1)),
        ("EVERY_6_MONTHS", at(2025, 1, 1), at(2025, 7, 1)),
        ("EVERY_YEAR", at(2025, 1, 1), at(2026, 1, 1)),
        ("EVERY_30_MINUTES_BETWEEN_9AM_AND_5PM", at(2025, 1, 1, 17, 30), at(2025, 1, 2, 9)),
        ("MONDAY_TO_FRIDAY_AT_09_30AM", at(2025, 1, 3, 10), at(2025, 1, 6, 9, 30)),
        ("MONDAY_TO_FRIDAY_AT_11PM", at(2025, 1, 1), at(2025, 1, 1, 23)),
    ],
)
def test_nestjs_cron_expressions_fire_when_nestjs_fires_them(name, after, expected):
    assert fire_after(build_trigger(ScheduleSpec(cron=CronExpression[name])), after) == expected


def test_a_cron_expression_member_declares_a_schedule_as_plain_text():
    declaration = declare("nest-style", "taskhub.ping", cron=CronExpression.EVERY_10_SECONDS)
    try:
        assert type(declaration.spec.cron) is str and declaration.spec.cron == "*/10 * * * * *"
    finally:
        undeclare("nest-style")
