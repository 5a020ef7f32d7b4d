"""The scheduler process (``manage.py runscheduler``): fires due schedule slots as tasks.

APScheduler runs the poll (every SCHEDULER_POLL_INTERVAL seconds); its triggers compute the
slots (taskhub.scheduler.cron). The database decides what fires: each due schedule is handled in
one transaction that locks its row, inserts a ScheduleRun unique on (schedule, slot)
(taskhub.scheduler.runs), schedules the task and advances ``next_run_at``. Any number of
scheduler processes may run; a slot fires once (docs/architecture.md, "One firing per cron
slot") — the row lock keeps them apart, and the unique run row is the backstop a stale or crashed
process can't get past. A crash before commit leaves nothing; after, the slot is done.

Like the dispatcher and lifeline: small units (sync, tick, fire, refresh), counts logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass

import redis
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    close_old_connections,
    transaction,
)
from django.utils import timezone

from ..conf import taskhub_settings
from ..engine.broker import get_redis, key
from ..models import RunStatus, RunTrigger, ScheduleKind, ScheduleRun, TaskSchedule
from .cron import InvalidSchedule, build_trigger, latest_slot
from .runs import record_run, refresh_run_outcomes
from .schedules import first_run_after, spec_of, sync_declared_schedules

logger = logging.getLogger(__name__)
REFRESH_EVERY = 5.0  # seconds between refreshes of run outcomes

#: APScheduler's loggers that log every run of the poll job at INFO ("Running job …", "Job …
#: executed successfully": two lines a second, 172,800 a day, saying nothing).
APSCHEDULER_CHATTY_LOGGERS = ("apscheduler.executors.default", "apscheduler.scheduler")


def quiet_apscheduler() -> None:
    """Raise APScheduler's per-run loggers to WARNING (its warnings and errors — a missed run,
    a job that raised — still show), unless the project's LOGGING set a level on them or on a
    parent (``apscheduler``): an explicit choice is kept."""
    for name in APSCHEDULER_CHATTY_LOGGERS:
        parts = name.split(".")
        chain = [logging.getLogger(".".join(parts[:n])) for n in range(len(parts), 0, -1)]
        if all(each.level == logging.NOTSET for each in chain):
            chain[0].setLevel(logging.WARNING)


@dataclass
class TickReport:
    fired: int = 0
    skipped: int = 0
    lost_races: int = 0


def fire_due(schedule_id: int, now: dt.datetime, report: TickReport) -> None:
    """Fire one due schedule: its latest missed slot within grace (older ones coalesce into
    it), or record the miss; then advance next_run_at past ``now``."""
    with transaction.atomic():
        row = (
            TaskSchedule.objects.select_for_update(skip_locked=True)
            .filter(id=schedule_id, enabled=True, next_run_at__lte=now)
            .first()
        )
        if row is None:  # another scheduler holds it or has just advanced it
            report.lost_races += 1
            return
        try:
            trigger = build_trigger(spec_of(row))
        except InvalidSchedule as exc:
            logger.error("schedule %s is invalid, disabling it: %s", row.name, exc)
            row.enabled, row.next_run_at = False, None
            row.save(update_fields=["enabled", "next_run_at"])
            return
        slot = latest_slot(trigger, row.next_run_at, now, taskhub_settings.SCHEDULER_GRACE)
        try:
            if slot is None:
                _record_skipped(row, now)
                report.skipped += 1
            else:
                record_run(row, slot, RunTrigger.SCHEDULE)
                report.fired += 1
        except IntegrityError:
            # The unique (schedule, slot) row exists: this slot already fired. Never twice.
            report.lost_races += 1
        row.next_run_at = None if row.kind == ScheduleKind.ONCE else first_run_after(row, now)
        row.save(update_fields=["next_run_at"])


def _record_skipped(row: TaskSchedule, now: dt.datetime) -> None:
    late = (now - row.next_run_at).total_seconds()
    with transaction.atomic():
        ScheduleRun.objects.create(
            schedule=row,
            slot=row.next_run_at,
            status=RunStatus.SKIPPED,
            created_at=now,
            error=f"missed by {late:.0f}s, more than the grace of "
            f"{taskhub_settings.SCHEDULER_GRACE:g}s",
        )
    logger.warning("schedule %s missed its slots since %s; skipped", row.name, row.next_run_at)


def tick(now: dt.datetime | None = None) -> TickReport:
    """Fire every due schedule once."""
    now = now or timezone.now()
    report = TickReport()
    due = TaskSchedule.objects.filter(enabled=True, next_run_at__lte=now).order_by("next_run_at")
    for schedule_id in due.values_list("id", flat=True):
        fire_due(schedule_id, now, report)
    if report.fired or report.skipped:
        logger.info("scheduler fired %d slots, skipped %d", report.fired, report.skipped)
    return report


class Scheduler:
    """The long-running process: sync declarations, then poll on an APScheduler interval job."""

    def __init__(self, poll_interval: float | None = None) -> None:
        quiet_apscheduler()
        self.poll_interval = poll_interval or taskhub_settings.SCHEDULER_POLL_INTERVAL
        self._aps = BlockingScheduler(timezone=dt.UTC)
        self._stopping = threading.Event()
        self._last_refresh = 0.0
        self._failures = 0

    def run_forever(self) -> None:
        if not taskhub_settings.ENABLE_SCHEDULING:
            logger.warning("scheduling is disabled (ENABLE_TASK_SCHEDULING=false); not starting")
            return
        synced = sync_declared_schedules()
        logger.info("scheduler started (%d declared schedules synced)", synced)
        self._aps.add_job(
            self.poll,
            IntervalTrigger(seconds=self.poll_interval),
            id="taskhub-scheduler-poll",
            max_instances=1,
            coalesce=True,
            next_run_time=timezone.now(),
        )
        if not self._stopping.is_set():
            self._aps.start()
        logger.info("scheduler stopped")

    def stop(self) -> None:
        self._stopping.set()
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def poll(self) -> None:
        try:
            tick()
            beat()
            if time.monotonic() - self._last_refresh >= REFRESH_EVERY:
                refresh_run_outcomes()
                self._last_refresh = time.monotonic()
            self._failures = 0
        except (DatabaseError, InterfaceError) as exc:
            self._failures += 1
            logger.warning("scheduler poll failed (%d in a row): %s", self._failures, exc)
        finally:
            # The poll runs on APScheduler's worker threads: don't leave broken connections.
            close_old_connections()


# -- health: the scheduler's heartbeat ------------------------------------------------------------


def _heartbeat_key() -> str:
    return key("scheduler", "last-poll")


def beat() -> None:
    """Record a successful poll (one Redis SET) for the health check; never fails the poll."""
    ttl = int(max(300, taskhub_settings.SCHEDULER_POLL_INTERVAL * 100))
    try:
        get_redis().set(_heartbeat_key(), repr(time.time()), ex=ttl)
    except (redis.RedisError, OSError) as exc:
        logger.debug("scheduler heartbeat not recorded: %s", exc)


def last_poll_age() -> float | None:
    """Seconds since a scheduler last polled successfully, or None if none has recently."""
    value = get_redis().get(_heartbeat_key())
    return None if value is None else max(0.0, time.time() - float(value))
