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
    # Live event streams (GET /api/events/stream): seconds a stream lasts before the client
    # reconnects (and is authorised again), keep-alive comment interval, ticket lifetime,
    # open-stream caps (per web process, per user or operator), rows replayed before a reset.
    "EVENTS_STREAM_LIFETIME": 1800.0,
    "EVENTS_KEEPALIVE": 15.0,
    "EVENTS_TICKET_TTL": 60,
    "EVENTS_MAX_STREAMS": 1000,
    "EVENTS_MAX_STREAMS_PER_USER": 5,
    "EVENTS_REPLAY_LIMIT": 1000,
    # Let outgoing HTTP (webhooks, image downloads, syncs) reach private/loopback addresses.
    "ALLOW_PRIVATE_TARGETS": False,
    # How long an idle consumer waits for the dispatcher's nudge before polling anyway
    # (milliseconds); the nudge wakes it at once, this only bounds a lost nudge.
    "WORKER_POLL_MS": 1000,
    # Crons and stored schedules (taskhub.cron, runscheduler). False turns all scheduling off.
    "ENABLE_SCHEDULING": True,
    # How often the scheduler looks for due slots and edited schedules (seconds).
    "SCHEDULER_POLL_INTERVAL": 1.0,
    # After downtime, missed slots coalesce into one run if the latest is at most this old
    # (seconds); older ones are recorded as skipped.
    "SCHEDULER_GRACE": 3600.0,
    # --- operator surfaces (admin, API, health, metrics) ---
    # Health turns "degraded" when a running queue has more waiting tasks than this, or its
    # oldest waiting task has waited longer than this many seconds.
    "HEALTH_MAX_WAITING": 10_000,
    "HEALTH_MAX_WAITING_AGE": 600.0,
    # Seconds /metrics reuses its database aggregates (one set of queries per interval).
    "METRICS_CACHE_SECONDS": 5.0,
    # Serve /metrics without authentication (otherwise: a viewer's token or session).
    "METRICS_PUBLIC": False,
    # Seconds between refreshes of the queues dashboard in the admin.
    "DASHBOARD_REFRESH_SECONDS": 5,
    # --- built-in tasks (taskhub.builtins) ---
    # image.process: largest download (bytes) and largest image (pixels) accepted; a bigger
    # image is refused as a decompression bomb before it is decoded.
    "IMAGE_MAX_BYTES": 20 * 1024 * 1024,
    "IMAGE_MAX_PIXELS": 40_000_000,
    # Folder, inside Django's default storage, that processed images are saved under.
    "IMAGE_STORAGE_DIR": "images",
    # data.sync / data.process_batch: items per committed chunk, the share of failed items
    # (0..1) above which a batch fails, and the largest input file downloaded (bytes).
    "BATCH_CHUNK_SIZE": 100,
    "BATCH_ERROR_THRESHOLD": 0.1,
    "BATCH_MAX_DOWNLOAD_BYTES": 100 * 1024 * 1024,
    # http.request and each page of data.sync: the largest response body read (bytes, counted
    # after decompression); a bigger one fails the task instead of filling the worker's memory.
    "HTTP_MAX_RESPONSE_BYTES": 10 * 1024 * 1024,
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
