"""``manage.py taskhub watch ID``: follow one task's events as JSON lines until it finishes.

Reads the rows (the truth) and uses the live channel only as a wake-up, so it misses nothing
even when a message is lost; without messages it still re-reads the rows every second.
Exit code: 0 completed, 1 failed or cancelled.
"""

from __future__ import annotations

import json
import sys
import time

from django.core.serializers.json import DjangoJSONEncoder

from .broker import get_redis
from .cli import fail, subcommand
from .events import channel, read_events
from .models import FINISHED_STATUSES, Task, TaskStatus
from .services import get_task


def _arguments(parser) -> None:
    parser.add_argument("id", help="the task's id")
    parser.add_argument(
        "--timeout", type=float, default=None, help="give up (exit 3) after this many seconds"
    )


@subcommand("watch", "print a task's events as JSON lines as they happen; exit when it ends",
            _arguments)  # fmt: skip
def watch(args) -> int:
    task = get_task(args.id)
    pubsub = _subscribe()
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    after = 0
    try:
        while True:
            status = Task.objects.filter(id=task.id).values_list("status", flat=True).first()
            for event in read_events(after=after, task=str(task.id)):
                sys.stdout.write(json.dumps(event, cls=DjangoJSONEncoder) + "\n")
                after = event["id"]
            sys.stdout.flush()
            if status is None:
                raise fail(f"task {task.id} was deleted")
            if status in FINISHED_STATUSES:
                return 0 if status == TaskStatus.COMPLETED else 1
            if deadline is not None and time.monotonic() > deadline:
                return 3
            _wait(pubsub, 1.0)
    finally:
        if pubsub is not None:
            pubsub.close()


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
