"""The scheduler: cron / interval / one-off schedules, and the process that fires their slots."""
