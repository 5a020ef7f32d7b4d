"""Operator alerts for dead-lettered tasks, throttled per task name.

The first dead letter of a task type opens a window (``ALERT_THROTTLE_SECONDS``) and schedules
``notifications.operator_alert`` after ``ALERT_DELAY_SECONDS``; every dead letter meanwhile only
increments a counter in Redis. While failures keep arriving (the last one less than
``ALERT_DELAY_SECONDS`` ago) the alert waits for the burst to end, but never past the window.
Then it takes the count and sends **one** e-mail
(``task_failure_alert`` template, to ``ALERT_EMAILS``) and one ``operator_alert`` signal for
webhooks — a thousand failures in a burst make one alert saying 1000. Failures after the window
closed open the next one. Counting lives in Redis: cheap on the worker's writer thread, and an
alert lost with a flushed Redis is acceptable (the dead letters themselves are in the database).
"""

from __future__ import annotations

import fnmatch
import logging
import time

from django.db import transaction
from django.dispatch import receiver

from taskhub import TaskStatus, schedule
from taskhub.console.services import redis_key, shared_redis
from taskhub.engine.signals import tasks_finished

from . import signals
from .conf import notifications_settings

logger = logging.getLogger(__name__)

ALERT_TASK = "notifications.operator_alert"
ALERT_TEMPLATE = "task_failure_alert"

# KEYS: stats hash, window key. ARGV: task id, error, queue, window seconds, now.
# Returns 1 when this failure opened a new window (the caller schedules the alert).
_COUNT = """
redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HSET', KEYS[1], 'task_id', ARGV[1], 'error', ARGV[2], 'queue', ARGV[3],
           'last_at', ARGV[5])
redis.call('HSETNX', KEYS[1], 'first_at', ARGV[5])
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then return 1 end
return 0
"""
# Take the counted failures and reset the count atomically.
_TAKE = """
local stats = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return stats
"""


def _stats_key(task_name: str) -> str:
    return redis_key("alerts", "stats", task_name)


def _window_key(task_name: str) -> str:
    return redis_key("alerts", "window", task_name)


def alerts_for(task_name: str, payload: dict) -> bool:
    if task_name == "email.send" and payload.get("template") == ALERT_TEMPLATE:
        return False  # an alert e-mail that fails must not alert about itself, forever
    patterns = notifications_settings.ALERT_TASKS
    return any(fnmatch.fnmatchcase(task_name, p) for p in patterns if p)


def record_dead_letter(task_name: str, task_id: str, error: str, queue: str) -> None:
    window = max(1, int(notifications_settings.ALERT_THROTTLE_SECONDS))
    opened = shared_redis().eval(
        _COUNT,
        2,
        _stats_key(task_name),
        _window_key(task_name),
        task_id,
        error[:2000],
        queue,
        window,
        time.time(),
    )
    if opened:
        delay = min(float(notifications_settings.ALERT_DELAY_SECONDS), window)
        schedule(
            ALERT_TASK,
            {"taskName": task_name},
            delay=delay,
            dedup_key=f"alert-{task_name}",
            correlation_id=f"alert-{task_name}",
        )


@receiver(tasks_finished, dispatch_uid="notifications.alerts")
def on_tasks_finished(sender, outcomes, **kwargs) -> None:
    for outcome in outcomes:
        if outcome.status != TaskStatus.FAILED or not alerts_for(outcome.name, outcome.payload):
            continue
        try:
            record_dead_letter(outcome.name, outcome.task_id, outcome.error, outcome.queue)
        except Exception:  # an alert must never break the worker's outcome writer
            logger.exception("could not record the dead letter of %s for alerting", outcome.name)


def send_alert(task_name: str) -> dict:
    """Send one alert for the failures counted since the last one (the alert task's body)."""
    client = shared_redis()
    if _burst_goes_on(client, task_name):
        delay = float(notifications_settings.ALERT_DELAY_SECONDS)
        schedule(
            ALERT_TASK, {"taskName": task_name}, delay=delay, correlation_id=f"alert-{task_name}"
        )
        return {"task_name": task_name, "deferred": True}
    raw = client.eval(_TAKE, 1, _stats_key(task_name))
    stats = {_text(raw[i]): _text(raw[i + 1]) for i in range(0, len(raw), 2)}
    count = int(stats.get("count", 0))
    if not count:
        return {"task_name": task_name, "count": 0, "sent": False}
    data = {
        "task_name": task_name,
        "count": count,
        "queue": stats.get("queue", ""),
        "task_id": stats.get("task_id", ""),
        "error": stats.get("error", ""),
        "window_seconds": int(notifications_settings.ALERT_THROTTLE_SECONDS),
    }
    try:
        with transaction.atomic():
            recipients = list(notifications_settings.ALERT_EMAILS)
            if recipients:
                schedule(
                    "email.send",
                    {
                        "to": recipients,
                        "subject": f"[taskhub] {count} failed task{'s' if count != 1 else ''}: "
                        f"{task_name}",
                        "template": ALERT_TEMPLATE,
                        "context": data,
                    },
                )
            signals.operator_alert.send(
                sender=send_alert, event={"type": "task.dead_lettered", "data": data}
            )
    except Exception:
        client.hincrby(_stats_key(task_name), "count", count)  # give the count back for a retry
        raise
    return {**data, "sent": True, "emailed": bool(recipients)}


def _burst_goes_on(client, task_name: str) -> bool:
    """Failures still arriving, and the window not over: wait to count the whole burst."""
    last_at, first_at = client.hmget(_stats_key(task_name), "last_at", "first_at")
    if last_at is None or first_at is None:
        return False
    now = time.time()
    quiet = float(notifications_settings.ALERT_DELAY_SECONDS)
    window = float(notifications_settings.ALERT_THROTTLE_SECONDS)
    return now - float(last_at) < quiet and now - float(first_at) < window - quiet


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
