"""The webhooks app's tasks: one delivery attempt, and the two maintenance crons."""

from pydantic import BaseModel

from taskhub import Schedule, TaskType, task


class DeliveryAttemptRequest(BaseModel):
    delivery_id: str
    attempt: int


# The attempt itself records failures and schedules the next attempt on the webhook retry
# schedule; taskhub's own retries only cover an unexpected error (the database away, say).
@task(
    "webhooks.deliver",
    queue="webhooks",
    type=TaskType.NOTIFICATION_DELIVERY,
    schema=DeliveryAttemptRequest,
    max_attempts=3,
    retry=Schedule([5, 30]),
)
def deliver(payload: DeliveryAttemptRequest, ctx) -> dict:
    from .delivery import attempt_delivery

    return attempt_delivery(payload.delivery_id, payload.attempt, task_id=ctx.task_id)


@task("webhooks.retry_due", queue="webhooks", max_attempts=1)
def retry_due(payload: dict) -> dict:
    """Reschedule overdue deliveries whose attempt task was lost (every RETRY_INTERVAL_MINUTES)."""
    from .services import retry_due_deliveries

    return {"rescheduled": retry_due_deliveries()}


@task("webhooks.cleanup", queue="webhooks", max_attempts=3)
def cleanup(payload: dict) -> dict:
    """Delete delivery logs older than CLEANUP_RETENTION_DAYS (daily at midnight)."""
    from .services import cleanup_deliveries

    return {"deleted": cleanup_deliveries(payload.get("older_than_days"))}
