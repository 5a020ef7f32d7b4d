"""The webhooks app's settings: ``settings.WEBHOOKS`` over documented defaults, read lazily."""

from __future__ import annotations

from typing import Any

from taskhub.conf import AppSettings

DEFAULTS: dict[str, Any] = {
    # Seconds to wait after failed attempt 1, 2, … ; when they run out the delivery is
    # permanently failed (so 5 delays = 6 attempts).
    "RETRY_SCHEDULE": [60, 300, 900, 3600, 6 * 3600],
    # Seconds an attempt may take (connect + send + response).
    "TIMEOUT": 10.0,
    # A Retry-After longer than this (seconds) is capped.
    "MAX_RETRY_AFTER": 24 * 3600,
    # The safety-net cron: attempts that are due but have no live task are sent again.
    "RETRY_INTERVAL_MINUTES": 5.0,
    # Deliveries (and their attempts) that finished longer ago than this are deleted nightly.
    "CLEANUP_RETENTION_DAYS": 30.0,
    # None: follow TASKHUB["ALLOW_PRIVATE_TARGETS"]; True/False overrides it for webhooks.
    "ALLOW_PRIVATE_TARGETS": None,
    # Publish taskhub's own lifecycle events (task.completed, task.failed, …).
    "LIFECYCLE_EVENTS": True,
    # After a secret rotation, the old secret keeps signing (beside the new one) this long.
    "ROTATION_OVERLAP_HOURS": 24.0,
    # verify(): how far a webhook-timestamp may be from now (seconds).
    "TIMESTAMP_TOLERANCE": 300,
    "USER_AGENT": "taskhub-webhooks/0.1",
    # Dotted paths of django Signals sent with ``event={"type": ..., "data": {...}}``; each
    # event is published as a webhook of that type. The project lists its apps' signals here
    # (config/settings.py), so webhooks imports no domain app.
    "SIGNALS": [],
}


webhooks_settings = AppSettings(
    "WEBHOOKS", DEFAULTS, types={"ALLOW_PRIVATE_TARGETS": (bool, type(None))}
)
