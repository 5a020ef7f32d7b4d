"""The notifications app's settings: ``settings.NOTIFICATIONS`` over documented defaults."""

from __future__ import annotations

from typing import Any

from taskhub.conf import AppSettings

DEFAULTS: dict[str, Any] = {
    # Channels a user gets when they have set no preference.
    "DEFAULT_CHANNELS": ["in_app", "email", "webhook"],
    # Operators e-mailed when a task is dead-lettered (empty: alerts go to the signal only).
    "ALERT_EMAILS": [],
    # Task names (shell patterns) that alert when dead-lettered.
    "ALERT_TASKS": ["*"],
    # At most one alert per task name per window (seconds); it is sent ALERT_DELAY_SECONDS after
    # the window's first failure and carries the count of every failure since the last alert.
    "ALERT_THROTTLE_SECONDS": 300.0,
    "ALERT_DELAY_SECONDS": 60.0,
}

notifications_settings = AppSettings("NOTIFICATIONS", DEFAULTS)
