"""``manage.py taskhub watch ID``: follow one task's events — or every step event of a workflow
run — as JSON lines until it finishes.

Reads the rows (the truth) and uses the live channel only as a wake-up, so it misses nothing
even when a message is lost; without messages it still re-reads the rows every second.
Exit code: 0 completed (a run: succeeded), 1 failed or cancelled (a run: anything else).
"""

from __future__ import annotations

import json
import sys
import time
import uuid

from django.core.serializers.json import DjangoJSONEncoder

from ..console.services import get_task
from ..engine.broker import get_redis
from ..engine.events import channel, read_events
from ..errors import TaskNotFound
from ..models import FINISHED_STATUSES, Task, TaskStatus, WorkflowRun, WorkflowStatus
from ..workflows.models import FINAL_RUN_STATUSES
from .subcommands import fail, subcommand


def _arguments(parser) -> None:
    parser.add_argument("id", help="a task's id, or a workflow run's id")
    parser.add_argument(
        "--timeout", type=float, default=None, help="give up (exit 3) after this many seconds"
    )


@subcommand(
    "watch", "print a task's events as JSON lines as they happen; exit when it ends", _arguments
)
def watch(args) -> int:
    try:
        task = get_task(args.id)
        target, ended = {"task": str(task.id)}, lambda: _task_ended(task.id)
    except TaskNotFound:
        run = WorkflowRun.objects.filter(id=task_id_or_none(args.id)).first()
        if run is None:
            raise
        target, ended = {"workflow": str(run.id)}, lambda: _run_ended(run.id)
    pubsub = _subscribe()
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    after = 0
    try:
        while True:
            code = ended()
            for event in read_events(after=after, **target):
                sys.stdout.write(json.dumps(event, cls=DjangoJSONEncoder) + "\n")
                after = event["id"]
            sys.stdout.flush()
            if code is not None:
                return code
            if deadline is not None and time.monotonic() > deadline:
                return 3
            _wait(pubsub, 1.0)
    finally:
        if pubsub is not None:
            pubsub.close()


def task_id_or_none(value: str):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _task_ended(task_id) -> int | None:
    """The exit code once the task has finished, else None."""
    status = Task.objects.filter(id=task_id).values_list("status", flat=True).first()
    if status is None:
        raise fail(f"task {task_id} was deleted")
    if status in FINISHED_STATUSES:
        return 0 if status == TaskStatus.COMPLETED else 1
    return None


def _run_ended(run_id) -> int | None:
    status = WorkflowRun.objects.filter(id=run_id).values_list("status", flat=True).first()
    if status is None:
        raise fail(f"workflow run {run_id} was deleted")
    if status in (*FINAL_RUN_STATUSES, WorkflowStatus.COMPENSATION_FAILED):
        return 0 if status == WorkflowStatus.SUCCEEDED else 1
    return None


def _subscribe():
    try:
        pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(channel())
        return pubsub
    except Exception:  # no live wake-ups: the one-second re-read still follows the task
        return None


def _wait(pubsub, timeout: float) -> None:
    if pubsub is None:
        time.sleep(timeout)
        return
    try:
        pubsub.get_message(timeout=timeout)
    except Exception:
        time.sleep(timeout)
