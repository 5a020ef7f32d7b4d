"""taskhub's settings namespace: ``settings.TASKHUB`` over documented defaults, read lazily.

Every value is looked up when it is used, never at import, so ``override_settings`` works in tests.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

#: Queues and their concurrency caps (tasks running at once across every worker process and host).
#: ``None`` means no cap beyond the dispatch window. ``rate`` is a maximum of starts per second.
DEFAULT_QUEUES: dict[str, dict[str, Any]] = {
    "default": {"concurrency": 10},
    "email": {"concurrency": 5},
    "image-processing": {"concurrency": 3},
    "blockchain-events": {"concurrency": 5, "rate": 10},
    "notifications": {"concurrency": 5},
    "analytics": {"concurrency": 2},
    "webhooks": {"concurrency": 10},
}

DEFAULTS: dict[str, Any] = {
    # Upper bound on tasks running at once in one worker process (its thread count).
    "MAX_CONCURRENT_TASKS": 8,
    "DEFAULT_MAX_ATTEMPTS": 5,
    # Seconds a single attempt may run before it is interrupted and counted as failed.
    "DEFAULT_TIMEOUT": 300.0,
    # Largest accepted payload, in bytes of its JSON encoding.
    "MAX_PAYLOAD_BYTES": 256 * 1024,
    # The default retry schedule, in seconds, when a task declares no policy.
    "DEFAULT_RETRY_SCHEDULE": [1, 5, 15, 60],
    "QUEUES": DEFAULT_QUEUES,
    # Messages kept in the broker per queue, per live worker thread serving it. Small keeps
    # priority and pause effective at once; large keeps very short tasks flowing.
    "DISPATCH_PREFETCH": 2,
    "DISPATCH_MIN_WINDOW": 2,
    # Extra window: what a queue drains in this many seconds (see dispatcher.queue_windows).
    "DISPATCH_BUFFER_SECONDS": 0.1,
    "DISPATCH_BATCH": 500,
    # Fallback poll when no wake-up arrives (seconds).
    "DISPATCH_POLL_INTERVAL": 1.0,
    # Worker outcome writer: how often buffered status writes are flushed (milliseconds).
    "FLUSH_INTERVAL_MS": 20,
    # A task running longer than this shows "running" in the database (milliseconds).
    "RUNNING_WRITE_AFTER_MS": 100,
    "HEARTBEAT_INTERVAL": 5.0,
    # A worker silent for this long is presumed dead and its tasks run again (seconds).
    "LIFELINE_TIMEOUT": 30.0,
    # A queued row whose message was not picked up for this long is sent again (seconds).
    "REDISPATCH_AFTER": 30.0,
    "LIFELINE_INTERVAL": 5.0,
    # How long attempt claims are remembered in Redis, which bounds duplicate detection (seconds).
    "CLAIM_TTL": 6 * 3600,
    # How long completed and cancelled tasks are kept before `taskhub prune` removes them.
    "RETENTION_DAYS": 7.0,
    "PRUNE_BATCH": 5000,
    "KEY_PREFIX": "taskhub",
    # Let outgoing HTTP (webhooks, image downloads, syncs) reach private/loopback addresses.
    "ALLOW_PRIVATE_TARGETS": False,
    # How long the idle Dramatiq consumer sleeps at most between polls (milliseconds).
    "WORKER_POLL_MS": 50,
    # Crons and stored schedules (taskhub.cron, runscheduler). False turns all scheduling off.
    "ENABLE_SCHEDULING": True,
    # How often the scheduler looks for due slots and edited schedules (seconds).
    "SCHEDULER_POLL_INTERVAL": 1.0,
    # After downtime, missed slots coalesce into one run if the latest is at most this old
    # (seconds); older ones are recorded as skipped.
    "SCHEDULER_GRACE": 3600.0,
}


class TaskhubSettings:
    """Attribute access to TASKHUB settings, falling back to DEFAULTS, resolved on each access."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown taskhub setting {name!r}")
        user = getattr(django_settings, "TASKHUB", {}) or {}
        return user.get(name, DEFAULTS[name])

    def queue_config(self, queue: str) -> dict[str, Any]:
        return self.QUEUES.get(queue, {"concurrency": None})


taskhub_settings = TaskhubSettings()
