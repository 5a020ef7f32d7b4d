"""``analytics.track``: record one analytics event (the task-queue document's ``analytics``
queue, ``POST /api/task-queue/analytics``).

The event is written as an :class:`~taskhub.builtins.models.AnalyticsEvent` row, one per task, so
a retried attempt does not count it twice; the result says how many events of that name were
recorded on the event's day, so a caller (or the console) sees the running count.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..definitions.registry import task
from ..definitions.retry import Exponential
from .models import AnalyticsEvent


class TrackEvent(BaseModel):
    """Payload of ``analytics.track``."""

    model_config = ConfigDict(populate_by_name=True)

    event: str = Field(min_length=1, max_length=200)
    user_id: str | int | None = Field(default=None, alias="userId")
    properties: dict[str, Any] = Field(default_factory=dict)
    #: when it happened (ISO 8601 with a time zone); the time it is recorded when absent
    timestamp: dt.datetime | None = None

    @field_validator("user_id")
    @classmethod
    def short_user_id(cls, value: str | int | None) -> str | int | None:
        if isinstance(value, bool) or (value is not None and not 0 < len(str(value)) <= 200):
            raise ValueError("userId must be a number or 1 to 200 characters")
        return value

    @field_validator("timestamp")
    @classmethod
    def aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamp needs a time zone (e.g. 2026-01-01T12:00:00Z)")
        return value


@task(
    "analytics.track",
    queue="analytics",
    schema=TrackEvent,
    # The task-queue document's analytics queue: 2 attempts, exponential from 1 s.
    max_attempts=2,
    retry=Exponential(initial=1, cap=60),
    timeout=30,
)
def track(payload: TrackEvent, ctx) -> dict:
    """Record the event once and answer with the day's count for its name."""
    occurred = payload.timestamp or timezone.now()
    row, created = AnalyticsEvent.objects.get_or_create(
        task_id=ctx.task_id,
        defaults={
            "event": payload.event,
            "user_id": "" if payload.user_id is None else str(payload.user_id),
            "properties": payload.properties,
            "occurred_at": occurred,
        },
    )
    day = row.occurred_at.astimezone(dt.UTC).date()
    count = AnalyticsEvent.objects.filter(event=row.event, occurred_at__date=day).count()
    ctx.logger.info("%s recorded (%d on %s)", row.event, count, day)
    return {
        "event_id": row.pk,
        "event": row.event,
        "recorded": created,
        "day": str(day),
        "count_today": count,
    }
