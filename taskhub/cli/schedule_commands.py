"""``manage.py taskhub schedules | schedule-add | run-now | schedule-enable | …``."""

from __future__ import annotations

import datetime as dt
import sys

from ..scheduler import schedules
from ..scheduler.cron import InvalidSchedule
from .subcommands import fail, parse_json, print_json, subcommand


def schedule_as_json(row, runs) -> dict:
    return {
        "name": row.name,
        "task": row.task_name,
        "kind": row.kind,
        "when": row.when,
        "cron": row.cron or None,
        "interval_seconds": row.interval_seconds,
        "run_at": row.run_at,
        "timezone": row.timezone,
        "enabled": row.enabled,
        "source": row.source,
        "payload": row.payload,
        "next_run_at": row.next_run_at,
        "last_run_at": row.last_run_at,
        "last_status": row.last_status or None,
        "runs": [
            {
                "slot": r.slot,
                "task_id": str(r.task_id) if r.task_id else None,
                "status": r.status,
                "trigger": r.trigger,
                "error": r.error or None,
            }
            for r in runs
        ],
    }


def _list_args(p) -> None:
    p.add_argument("--json", action="store_true")
    p.add_argument("--runs", type=int, default=20, help="runs shown per schedule (newest first)")


@subcommand("schedules", "list schedules, their next run and their runs so far", _list_args)
def list_schedules(args) -> None:
    rows = schedules.list_schedules()
    data = [schedule_as_json(r, list(r.runs.order_by("-slot")[: args.runs])) for r in rows]
    if args.json:
        print_json(data)
        return
    for item in data:
        state = "enabled" if item["enabled"] else "disabled"
        next_run = item["next_run_at"].isoformat() if item["next_run_at"] else "-"
        sys.stdout.write(
            f"{item['name']}  task={item['task']}  {item['when']} ({item['timezone']})  "
            f"{state}  next={next_run}\n"
        )
        for run in item["runs"]:
            sys.stdout.write(
                f"    {run['slot'].isoformat()}  {run['task_id'] or '-'}  {run['status']}"
                f"{'  (run now)' if run['trigger'] == 'manual' else ''}\n"
            )


def _add_args(p) -> None:
    p.add_argument("name")
    p.add_argument("--task", required=True, help="task name, e.g. taskhub.ping")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help='5 fields ("*/5 * * * *") or 6 with seconds first')
    when.add_argument("--every", type=float, help="interval in seconds")
    when.add_argument("--at", help="one run at this ISO 8601 time (with offset)")
    p.add_argument("--payload", default="{}", help="JSON object")
    p.add_argument("--timezone", default="UTC")
    p.add_argument("--disabled", action="store_true", help="store it disabled")


@subcommand("schedule-add", "store a cron / interval / one-off schedule", _add_args)
def add(args) -> None:
    run_at = None
    if args.at:
        try:
            run_at = dt.datetime.fromisoformat(args.at)
        except ValueError:
            raise fail(f"--at {args.at!r} is not an ISO 8601 time") from None
    try:
        row = schedules.create_schedule(
            args.name,
            args.task,
            cron=args.cron,
            interval=args.every,
            run_at=run_at,
            payload=parse_json(args.payload, "--payload"),
            timezone_name=args.timezone,
            enabled=not args.disabled,
        )
    except InvalidSchedule as exc:
        raise fail(str(exc)) from None
    next_run = row.next_run_at.isoformat() if row.next_run_at else "-"
    sys.stdout.write(f"{row.name} next run {next_run}\n")


def _name_arg(p) -> None:
    p.add_argument("name")


def _lookup(action, name):
    try:
        return action(name)
    except schedules.ScheduleNotFound as exc:
        raise fail(str(exc)) from None
    except InvalidSchedule as exc:
        raise fail(str(exc)) from None


@subcommand("run-now", "schedule a schedule's task now; prints the task id", _name_arg)
def run_now(args) -> None:
    schedules.sync_declared_schedules()
    run = _lookup(schedules.run_now, args.name)
    sys.stdout.write(f"{run.task_id}\n")


@subcommand("schedule-enable", "enable a schedule (fires from its next slot)", _name_arg)
def enable(args) -> None:
    row = _lookup(schedules.enable_schedule, args.name)
    sys.stdout.write(f"{row.name} enabled, next run {row.next_run_at.isoformat()}\n")


@subcommand("schedule-disable", "disable a schedule", _name_arg)
def disable(args) -> None:
    row = _lookup(schedules.disable_schedule, args.name)
    sys.stdout.write(f"{row.name} disabled\n")


@subcommand("schedule-delete", "delete a stored schedule and its history", _name_arg)
def delete(args) -> None:
    _lookup(schedules.delete_schedule, args.name)
    sys.stdout.write(f"{args.name} deleted\n")
