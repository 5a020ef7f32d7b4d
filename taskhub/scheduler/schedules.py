"""The schedules table: operator actions on schedules (the admin, the API and the command line
all call these), and the crons declared in code written to it (sync_declared_schedules, at the
scheduler's start and before schedules are listed).

Whoever changes when a schedule fires also recomputes its ``next_run_at``, so the scheduler only
ever compares ``next_run_at`` with the clock: an edit takes effect at its next poll (about a
second), with no restart.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..definitions.payloads import validate_payload
from ..definitions.registry import get_definition, get_external_definition
from ..errors import InvalidTaskRequest, TaskhubError
from ..models import (
    ACTIVE_STATUSES,
    RunStatus,
    RunTrigger,
    ScheduleKind,
    ScheduleRun,
    ScheduleSource,
    TaskSchedule,
)
from .cron import InvalidSchedule, ScheduleSpec, build_trigger, declared, fire_after
from .runs import record_run, refresh_run_outcomes

logger = logging.getLogger(__name__)
_TIMING_FIELDS = ("cron", "interval", "run_at", "timezone")


class ScheduleNotFound(TaskhubError, LookupError):
    """No schedule has that name (or id)."""


def spec_of(row: TaskSchedule) -> ScheduleSpec:
    return ScheduleSpec(
        cron=row.cron if row.kind == ScheduleKind.CRON else "",
        interval=row.interval_seconds if row.kind == ScheduleKind.INTERVAL else None,
        run_at=row.run_at if row.kind == ScheduleKind.ONCE else None,
        timezone=row.timezone,
        anchor=row.anchor_at,
    )


def first_run_after(row: TaskSchedule, moment: dt.datetime) -> dt.datetime | None:
    """When the schedule next fires after ``moment``; a one-off fires at run_at even if late."""
    if row.kind == ScheduleKind.ONCE:
        return row.run_at if row.last_run_at is None else None
    return fire_after(build_trigger(spec_of(row)), moment)


def get_schedule(ref: str | int) -> TaskSchedule:
    """A schedule by name (or numeric id)."""
    query = TaskSchedule.objects.filter(name=str(ref))
    if isinstance(ref, int) or str(ref).isdigit():
        query = TaskSchedule.objects.filter(name=str(ref)) | TaskSchedule.objects.filter(id=ref)
    row = query.first()
    if row is None:
        raise ScheduleNotFound(f"no schedule named {ref!r}")
    return row


def _apply_definition(row: TaskSchedule, changes: dict[str, Any], now: dt.datetime) -> None:
    """Validate and set task, payload and timing on ``row`` (not saved)."""
    if "task" in changes:
        row.task_name = changes["task"]
    # A stored schedule is written from outside (API, CLI, admin): internal tasks are refused.
    # Declarations in code are the application's own, like its other calls to schedule().
    lookup = get_definition if row.source == ScheduleSource.CODE else get_external_definition
    definition = lookup(row.task_name)
    if "payload" in changes:
        row.payload = changes["payload"]
    row.payload = validate_payload(definition, row.payload)
    timing = {k: changes[k] for k in _TIMING_FIELDS if changes.get(k) is not None}
    given = {"cron", "interval", "run_at"} & timing.keys()
    if len(given) > 1:
        raise InvalidSchedule("give exactly one of cron, interval or run_at", field="cron")
    if given:
        row.cron = timing.get("cron") or ""
        row.interval_seconds = timing.get("interval")
        row.run_at = timing.get("run_at")
        row.kind = (
            ScheduleKind.CRON
            if row.cron
            else ScheduleKind.INTERVAL
            if row.interval_seconds is not None
            else ScheduleKind.ONCE
        )
        row.anchor_at = now
        row.last_run_at = None if row.kind == ScheduleKind.ONCE else row.last_run_at
    row.timezone = timing.get("timezone", row.timezone)
    build_trigger(spec_of(row))  # raises InvalidSchedule for a bad definition
    if row.kind == ScheduleKind.ONCE and "run_at" in timing and row.run_at < now:
        raise InvalidSchedule("run_at is in the past", field="run_at")


def create_schedule(
    name: str,
    task: str,
    *,
    cron: str | None = None,
    interval: float | None = None,
    run_at: dt.datetime | None = None,
    payload: dict[str, Any] | None = None,
    timezone_name: str = "UTC",
    enabled: bool = True,
    source: str = ScheduleSource.DATABASE,
) -> TaskSchedule:
    """Store a schedule; it fires from its next slot. InvalidSchedule / InvalidTaskRequest for
    a bad name, task, payload or timing — nothing is stored then."""
    if not isinstance(name, str) or not 0 < len(name.strip()) <= 200:
        raise InvalidSchedule("name must be 1 to 200 characters", field="name")
    now = timezone.now()
    row = TaskSchedule(
        name=name.strip(),
        task_name=task,
        enabled=enabled,
        source=source,
        anchor_at=now,
        created_at=now,
        updated_at=now,
    )
    changes = dict(cron=cron, interval=interval, run_at=run_at, payload=payload or {})
    _apply_definition(row, {**changes, "timezone": timezone_name}, now)
    row.next_run_at = first_run_after(row, now) if enabled else None
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        raise InvalidSchedule(f"a schedule named {name!r} exists", field="name") from None
    return row


def update_schedule(ref: str | int, **changes: Any) -> TaskSchedule:
    """Change task, payload, cron / interval / run_at, timezone or enabled; takes effect at the
    scheduler's next poll. Schedules declared in code can only be enabled or disabled."""
    unknown = set(changes) - {"task", "payload", "enabled", *_TIMING_FIELDS}
    if unknown:
        raise InvalidSchedule(f"cannot change {', '.join(sorted(unknown))}", field="name")
    with transaction.atomic():
        row = TaskSchedule.objects.select_for_update().get(id=get_schedule(ref).id)
        if row.source == ScheduleSource.CODE and set(changes) - {"enabled"}:
            raise InvalidSchedule(
                f"schedule {row.name!r} is declared in code; change it there (or disable it)",
                field="name",
            )
        now = timezone.now()
        definition_changed = bool(set(changes) - {"enabled"})
        if definition_changed:
            _apply_definition(row, changes, now)
        newly_enabled = changes.get("enabled") is True and not row.enabled
        if "enabled" in changes:
            row.enabled = bool(changes["enabled"])
        if definition_changed or newly_enabled:
            # Counting from now: slots passed while disabled are not caught up.
            row.next_run_at = first_run_after(row, now)
        if not row.enabled:
            row.next_run_at = None
        row.updated_at = now
        row.save()
    return row


def enable_schedule(ref: str | int) -> TaskSchedule:
    return update_schedule(ref, enabled=True)


def disable_schedule(ref: str | int) -> TaskSchedule:
    return update_schedule(ref, enabled=False)


def delete_schedule(ref: str | int) -> None:
    """Delete a stored schedule and its history. Code schedules come back at the next sync, so
    they are refused: disable them instead."""
    row = get_schedule(ref)
    if row.source == ScheduleSource.CODE:
        raise InvalidSchedule(
            f"schedule {row.name!r} is declared in code; disable it instead", field="name"
        )
    row.delete()


def run_now(ref: str | int) -> ScheduleRun:
    """Schedule the schedule's task now, recorded as a manual run; the regular slots are
    unaffected."""
    with transaction.atomic():
        row = TaskSchedule.objects.select_for_update().get(id=get_schedule(ref).id)
        run = record_run(row, timezone.now(), RunTrigger.MANUAL)
        if run.error and run.status == RunStatus.ERROR:
            raise InvalidTaskRequest(f"run of {row.name!r} failed: {run.error}", field="task")
    return run


def schedule_runs(ref: str | int, limit: int = 50) -> list[ScheduleRun]:
    """A schedule's latest runs, newest first, with outcomes brought up to date."""
    row = get_schedule(ref)
    refresh_run_outcomes(ScheduleRun.objects.filter(schedule=row))
    return list(ScheduleRun.objects.filter(schedule=row).order_by("-slot")[:limit])


def list_schedules() -> list[TaskSchedule]:
    """Every schedule (code declarations synced first), outcomes brought up to date."""
    sync_declared_schedules()
    refresh_run_outcomes(ScheduleRun.objects.filter(status__in=ACTIVE_STATUSES))
    return list(TaskSchedule.objects.order_by("name"))


def sync_declared_schedules() -> int:
    """Write the crons declared in code to the schedules table; return how many changed.

    A declaration's definition wins over the row; the row keeps ``enabled`` (an operator may
    have disabled it) and its history. Code rows no longer declared are removed.
    """
    changed = 0
    declarations = declared()
    for name, declaration in declarations.items():
        spec = declaration.spec
        row = TaskSchedule.objects.filter(name=name).first()
        if row is None:
            try:
                create_schedule(
                    name,
                    declaration.task,
                    cron=spec.cron or None,
                    interval=spec.interval,
                    payload=declaration.payload,
                    timezone_name=spec.timezone,
                    source=ScheduleSource.CODE,
                )
                changed += 1
            except InvalidSchedule as exc:
                if exc.field != "name":  # "exists": a concurrent scheduler created it
                    logger.error("declared schedule %s is invalid: %s", name, exc)
            except InvalidTaskRequest as exc:
                logger.error("declared schedule %s is invalid: %s", name, exc)
            continue
        if row.source != ScheduleSource.CODE:
            logger.warning(
                "schedule %s exists in the database; the code declaration is ignored", name
            )
            continue
        wanted = (declaration.task, declaration.payload, spec.cron, spec.interval, spec.timezone)
        have = (row.task_name, row.payload, row.cron, row.interval_seconds, row.timezone)
        if wanted != have:
            now = timezone.now()
            row.task_name, row.payload, row.cron = declaration.task, declaration.payload, spec.cron
            row.interval_seconds, row.timezone = spec.interval, spec.timezone
            row.kind = "cron" if spec.cron else "interval"
            row.anchor_at, row.updated_at = now, now
            row.next_run_at = first_run_after(row, now) if row.enabled else None
            row.save()
            changed += 1
    stale = TaskSchedule.objects.filter(source=ScheduleSource.CODE).exclude(name__in=declarations)
    gone = stale.count()
    if gone:
        stale.delete()
        logger.info("removed %d schedules no longer declared in code", gone)
    return changed + gone
