"""Recurring work declared in code, and the trigger arithmetic every schedule shares.

A cron never does its work inline: it names a task, and each slot schedules that task (so
retries, dead letters, history and the admin apply). Declarations live in a registry here, are
written to the ``TaskSchedule`` table by the scheduler at start (``source = "code"``), and from
then on behave like schedules created by an operator: run now, enable/disable, history.

Parsing and next-fire computation are APScheduler 3.x's triggers (CronTrigger, IntervalTrigger,
DateTrigger); the only thing done by hand is translating cron's weekday numbers (0 = Sunday) to
names, because APScheduler 3 counts 0 as Monday (apscheduler#286).

    from taskhub.scheduler.cron import CronExpression, cron

    @cron(CronExpression.EVERY_5_MINUTES)
    @task("reports.refresh")
    def refresh(payload): ...

    declare("nightly-report", "reports.build", cron="0 2 * * *", timezone="Europe/Berlin")
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ..errors import InvalidTaskRequest


class CronExpression(StrEnum):
    """Every constant of NestJS's ``CronExpression`` (``@nestjs/schedule``), with the same cron
    strings, so a schedule ported from a NestJS service keeps its expression:
    ``@cron(CronExpression.EVERY_30_SECONDS)``. Six fields put seconds first, as in NestJS;
    weekdays are cron's (0 and 7 = Sunday). Each is also a module constant (``EVERY_30_SECONDS``).
    """

    EVERY_SECOND = "* * * * * *"
    EVERY_5_SECONDS = "*/5 * * * * *"
    EVERY_10_SECONDS = "*/10 * * * * *"
    EVERY_30_SECONDS = "*/30 * * * * *"
    EVERY_MINUTE = "*/1 * * * *"
    EVERY_5_MINUTES = "0 */5 * * * *"
    EVERY_10_MINUTES = "0 */10 * * * *"
    EVERY_30_MINUTES = "0 */30 * * * *"
    EVERY_HOUR = "0 0-23/1 * * *"
    EVERY_2_HOURS = "0 0-23/2 * * *"
    EVERY_3_HOURS = "0 0-23/3 * * *"
    EVERY_4_HOURS = "0 0-23/4 * * *"
    EVERY_5_HOURS = "0 0-23/5 * * *"
    EVERY_6_HOURS = "0 0-23/6 * * *"
    EVERY_7_HOURS = "0 0-23/7 * * *"
    EVERY_8_HOURS = "0 0-23/8 * * *"
    EVERY_9_HOURS = "0 0-23/9 * * *"
    EVERY_10_HOURS = "0 0-23/10 * * *"
    EVERY_11_HOURS = "0 0-23/11 * * *"
    EVERY_12_HOURS = "0 0-23/12 * * *"
    EVERY_DAY_AT_1AM = "0 01 * * *"
    EVERY_DAY_AT_2AM = "0 02 * * *"
    EVERY_DAY_AT_3AM = "0 03 * * *"
    EVERY_DAY_AT_4AM = "0 04 * * *"
    EVERY_DAY_AT_5AM = "0 05 * * *"
    EVERY_DAY_AT_6AM = "0 06 * * *"
    EVERY_DAY_AT_7AM = "0 07 * * *"
    EVERY_DAY_AT_8AM = "0 08 * * *"
    EVERY_DAY_AT_9AM = "0 09 * * *"
    EVERY_DAY_AT_10AM = "0 10 * * *"
    EVERY_DAY_AT_11AM = "0 11 * * *"
    EVERY_DAY_AT_NOON = "0 12 * * *"
    EVERY_DAY_AT_1PM = "0 13 * * *"
    EVERY_DAY_AT_2PM = "0 14 * * *"
    EVERY_DAY_AT_3PM = "0 15 * * *"
    EVERY_DAY_AT_4PM = "0 16 * * *"
    EVERY_DAY_AT_5PM = "0 17 * * *"
    EVERY_DAY_AT_6PM = "0 18 * * *"
    EVERY_DAY_AT_7PM = "0 19 * * *"
    EVERY_DAY_AT_8PM = "0 20 * * *"
    EVERY_DAY_AT_9PM = "0 21 * * *"
    EVERY_DAY_AT_10PM = "0 22 * * *"
    EVERY_DAY_AT_11PM = "0 23 * * *"
    EVERY_DAY_AT_MIDNIGHT = "0 0 * * *"
    EVERY_WEEK = "0 0 * * 0"
    EVERY_WEEKDAY = "0 0 * * 1-5"
    EVERY_WEEKEND = "0 0 * * 6,0"
    EVERY_1ST_DAY_OF_MONTH_AT_MIDNIGHT = "0 0 1 * *"
    EVERY_1ST_DAY_OF_MONTH_AT_NOON = "0 12 1 * *"
    EVERY_2ND_HOUR = "0 */2 * * *"
    EVERY_2ND_HOUR_FROM_1AM_THROUGH_11PM = "0 1-23/2 * * *"
    EVERY_2ND_MONTH = "0 0 1 */2 *"
    EVERY_QUARTER = "0 0 1 */3 *"
    EVERY_6_MONTHS = "0 0 1 */6 *"
    EVERY_YEAR = "0 0 1 1 *"
    EVERY_30_MINUTES_BETWEEN_9AM_AND_5PM = "0 */30 9-17 * * *"
    EVERY_30_MINUTES_BETWEEN_9AM_AND_6PM = "0 */30 9-18 * * *"
    EVERY_30_MINUTES_BETWEEN_10AM_AND_7PM = "0 */30 10-19 * * *"
    MONDAY_TO_FRIDAY_AT_1AM = "0 0 01 * * 1-5"
    MONDAY_TO_FRIDAY_AT_2AM = "0 0 02 * * 1-5"
    MONDAY_TO_FRIDAY_AT_3AM = "0 0 03 * * 1-5"
    MONDAY_TO_FRIDAY_AT_4AM = "0 0 04 * * 1-5"
    MONDAY_TO_FRIDAY_AT_5AM = "0 0 05 * * 1-5"
    MONDAY_TO_FRIDAY_AT_6AM = "0 0 06 * * 1-5"
    MONDAY_TO_FRIDAY_AT_7AM = "0 0 07 * * 1-5"
    MONDAY_TO_FRIDAY_AT_8AM = "0 0 08 * * 1-5"
    MONDAY_TO_FRIDAY_AT_9AM = "0 0 09 * * 1-5"
    MONDAY_TO_FRIDAY_AT_09_30AM = "0 30 09 * * 1-5"
    MONDAY_TO_FRIDAY_AT_10AM = "0 0 10 * * 1-5"
    MONDAY_TO_FRIDAY_AT_11AM = "0 0 11 * * 1-5"
    MONDAY_TO_FRIDAY_AT_11_30AM = "0 30 11 * * 1-5"
    MONDAY_TO_FRIDAY_AT_12PM = "0 0 12 * * 1-5"
    MONDAY_TO_FRIDAY_AT_1PM = "0 0 13 * * 1-5"
    MONDAY_TO_FRIDAY_AT_2PM = "0 0 14 * * 1-5"
    MONDAY_TO_FRIDAY_AT_3PM = "0 0 15 * * 1-5"
    MONDAY_TO_FRIDAY_AT_4PM = "0 0 16 * * 1-5"
    MONDAY_TO_FRIDAY_AT_5PM = "0 0 17 * * 1-5"
    MONDAY_TO_FRIDAY_AT_6PM = "0 0 18 * * 1-5"
    MONDAY_TO_FRIDAY_AT_7PM = "0 0 19 * * 1-5"
    MONDAY_TO_FRIDAY_AT_8PM = "0 0 20 * * 1-5"
    MONDAY_TO_FRIDAY_AT_9PM = "0 0 21 * * 1-5"
    MONDAY_TO_FRIDAY_AT_10PM = "0 0 22 * * 1-5"
    MONDAY_TO_FRIDAY_AT_11PM = "0 0 23 * * 1-5"


# The module constants (``from taskhub.scheduler.cron import EVERY_HOUR``), plain strings.
globals().update({member.name: member.value for member in CronExpression})
# taskhub's own, beside NestJS's: @nestjs/schedule dropped its 15-minute constant, and calls a
# month EVERY_1ST_DAY_OF_MONTH_AT_MIDNIGHT.
EVERY_15_MINUTES = "*/15 * * * *"
EVERY_MONTH = "0 0 1 * *"


_ONE_TICK = dt.timedelta(microseconds=1)
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class InvalidSchedule(InvalidTaskRequest):
    """A schedule definition was refused (bad cron expression, time zone, interval …)."""


@dataclass(frozen=True, kw_only=True)
class ScheduleSpec:
    """When a schedule fires: exactly one of cron, interval (seconds) or run_at (one-off)."""

    cron: str = ""
    interval: float | None = None
    run_at: dt.datetime | None = None
    timezone: str = "UTC"
    #: where interval slots are counted from, so every scheduler process computes the same slots
    anchor: dt.datetime | None = None

    @property
    def kind(self) -> str:
        return "cron" if self.cron else "interval" if self.interval else "once"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(f"unknown time zone {name!r}", field="timezone") from None


def _weekday_names(value: str) -> str:
    """Cron's numeric weekdays (0 or 7 = Sunday) as names, which APScheduler reads unambiguously."""
    if not re.search(r"\d", value):
        return value
    days: set[int] = set()
    for item in value.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            first, last = 0, 6
        else:
            low, _, high = base.partition("-")
            first = _weekday_number(low)
            last = _weekday_number(high) if high else (6 if step else first)
            last = 7 if last == 0 and first > 0 else last
        stride = int(step) if step else 1
        if stride <= 0 or first > last:
            raise InvalidSchedule(f"bad day-of-week field {value!r}", field="cron")
        days.update(d % 7 for d in range(first, last + 1, stride))
    return ",".join(_WEEKDAYS[d] for d in sorted(days))


def _weekday_number(token: str) -> int:
    token = token.strip().lower()
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token)
    if token[:3] in _WEEKDAYS:
        return _WEEKDAYS.index(token[:3])
    raise InvalidSchedule(f"bad day of week {token!r}", field="cron")


def cron_trigger(expression: str, timezone: str = "UTC") -> CronTrigger:
    """A CronTrigger from 5 fields (minute hour day month weekday) or 6 (seconds first)."""
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise InvalidSchedule(
            f"a cron expression has 5 fields (or 6 with seconds first), not {len(fields)}",
            field="cron",
        )
    second = fields.pop(0) if len(fields) == 6 else "0"
    minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_weekday_names(weekday),
            timezone=_zone(timezone),
        )
    except ValueError as exc:
        raise InvalidSchedule(f"bad cron expression {expression!r}: {exc}", field="cron") from None


#: The longest interval (seconds): ten years. Far beyond it the trigger's arithmetic overflows.
MAX_INTERVAL = 10 * 366 * 86400


def build_trigger(spec: ScheduleSpec) -> BaseTrigger:
    """The APScheduler trigger for a spec; InvalidSchedule if the spec is not exactly one kind."""
    given = [bool(spec.cron), spec.interval is not None, spec.run_at is not None]
    if sum(given) != 1:
        raise InvalidSchedule("give exactly one of cron, interval or run_at", field="cron")
    zone = _zone(spec.timezone)
    if spec.cron:
        return cron_trigger(spec.cron, spec.timezone)
    if spec.interval is not None:
        if not isinstance(spec.interval, int | float) or not 1 <= spec.interval <= MAX_INTERVAL:
            raise InvalidSchedule(
                f"interval must be from 1 to {MAX_INTERVAL} seconds (10 years)", field="interval"
            )
        anchor = spec.anchor or dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        return IntervalTrigger(seconds=spec.interval, start_date=anchor, timezone=zone)
    if spec.run_at.tzinfo is None:
        raise InvalidSchedule("run_at must be timezone-aware", field="run_at")
    return DateTrigger(run_date=spec.run_at, timezone=zone)


def fire_after(trigger: BaseTrigger, moment: dt.datetime) -> dt.datetime | None:
    """The first slot strictly after ``moment`` (None when the trigger is exhausted)."""
    slot = trigger.get_next_fire_time(None, moment + _ONE_TICK)
    if slot is None or slot <= moment:
        return None
    return slot.astimezone(dt.UTC)


def latest_slot(
    trigger: BaseTrigger, due: dt.datetime, now: dt.datetime, grace: float
) -> dt.datetime | None:
    """The most recent slot in [due, now] no older than ``grace`` seconds — the one slot that
    stands for every slot missed during downtime (they coalesce) — or None if all are older."""
    earliest = max(due, now - dt.timedelta(seconds=grace))
    slot = fire_after(trigger, earliest - _ONE_TICK)
    if slot is None or slot > now:
        return None
    while (following := fire_after(trigger, slot)) is not None and following <= now:
        slot = following
    return slot


# -- declarations in code -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CronDeclaration:
    name: str
    task: str
    spec_factory: Callable[[], ScheduleSpec]
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> ScheduleSpec:
        return self.spec_factory()


_declarations: dict[str, CronDeclaration] = {}


def declare(
    name: str,
    task: str,
    *,
    cron: str | Callable[[], str] | None = None,
    every: float | Callable[[], float] | None = None,
    timezone: str = "UTC",
    payload: dict[str, Any] | None = None,
) -> CronDeclaration:
    """Declare a schedule in code: ``cron`` (5 or 6 fields) or ``every`` (seconds).

    Either may be a callable, evaluated when the scheduler starts, so a period can come from
    settings without reading them at import.
    """
    if (cron is None) == (every is None):
        raise ValueError(f"schedule {name!r}: give cron or every, not both or neither")
    if isinstance(cron, str):
        cron = str(cron)  # a CronExpression member is stored and compared as its plain text

    def spec() -> ScheduleSpec:
        if cron is not None:
            return ScheduleSpec(cron=cron() if callable(cron) else cron, timezone=timezone)
        return ScheduleSpec(
            interval=float(every() if callable(every) else every), timezone=timezone
        )

    if isinstance(cron, str):
        cron_trigger(cron, timezone)  # a typo fails at import, not at 3 a.m.
    declaration = CronDeclaration(name=name, task=task, spec_factory=spec, payload=payload or {})
    _declarations[name] = declaration
    return declaration


def cron(
    expression: str,
    *,
    name: str | None = None,
    timezone: str = "UTC",
    payload: dict[str, Any] | None = None,
):
    """Decorate a task definition (put it above ``@task``) to run it on a cron expression."""

    def register(definition):
        declare(
            name or definition.name,
            definition.name,
            cron=expression,
            timezone=timezone,
            payload=payload,
        )
        return definition

    return register


def declared() -> dict[str, CronDeclaration]:
    return dict(_declarations)


def undeclare(name: str) -> None:
    """Remove a declaration (tests only)."""
    _declarations.pop(name, None)
