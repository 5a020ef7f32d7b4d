"""The four task types behind the established ``POST /api/task-queue/*`` endpoints.

- ``/api/task-queue/email`` → ``email.send`` on queue email (:class:`EmailPayload`)
- ``/api/task-queue/image-processing`` → ``image.process`` on image-processing
  (:class:`ImagePayload`)
- ``/api/task-queue/blockchain-event`` → ``blockchain.handle_event`` on blockchain-events
  (:class:`BlockchainEventPayload`)
- ``/api/task-queue/notification`` → ``notifications.deliver`` on notifications
  (:class:`NotificationPayload`)

The schemas are the contract existing clients rely on (field names included); they validate
before anything is stored. What a task does once validated is a **sender**: a callable
``sender(payload, ctx) -> result`` named by dotted path in ``TASKHUB["SENDERS"][task name]``.
The default sender only logs the request through ``ctx.logger`` and returns a summary, so the
endpoints work end to end before real e-mail, image, chain or notification backends exist.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from django.utils.module_loading import import_string
from pydantic import AnyHttpUrl, BaseModel, Field, field_validator

from ..conf import taskhub_settings
from ..registry import task
from ..retry import Exponential

__all__ = [
    "EmailPayload",
    "ImagePayload",
    "ImageTransformation",
    "BlockchainEventPayload",
    "NotificationPayload",
    "QUEUE_API_TASKS",
    "log_sender",
]

_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class EmailPayload(BaseModel):
    to: str | list[str]
    subject: str = Field(min_length=1, max_length=998)
    template: str = Field(min_length=1, max_length=200)
    context: dict[str, Any] = Field(default_factory=dict)

    @field_validator("to")
    @classmethod
    def addresses(cls, value: str | list[str]) -> str | list[str]:
        listed = [value] if isinstance(value, str) else value
        if not listed:
            raise ValueError("at least one recipient is required")
        for address in listed:
            if not _ADDRESS.match(address):
                raise ValueError(f"{address!r} is not an e-mail address")
        return value


class ImageTransformation(BaseModel):
    type: Literal["resize", "crop", "rotate", "grayscale", "thumbnail"]
    options: dict[str, Any] = Field(default_factory=dict)


class ImagePayload(BaseModel):
    url: AnyHttpUrl
    transformations: list[ImageTransformation] = Field(max_length=20)
    outputFormat: Literal["webp", "png", "jpeg"] = "webp"
    quality: int = Field(default=80, ge=1, le=100)


class BlockchainEventPayload(BaseModel):
    contractAddress: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    eventName: str = Field(min_length=1, max_length=200)
    parameters: dict[str, Any]
    networkId: int = Field(default=1, ge=1)


class NotificationPayload(BaseModel):
    userId: str | int
    type: str = Field(min_length=1, max_length=100)
    message: str = Field(min_length=1, max_length=10_000)
    metadata: dict[str, Any] = Field(default_factory=dict)


def log_sender(payload: BaseModel, ctx) -> dict[str, Any]:
    """The default sender: records what would be done in the task's log and returns it."""
    ctx.logger.info("%s accepted (no sender configured): %s", ctx.name, payload.model_dump_json())
    return {"handled": True, "sender": "log", "task": ctx.name}


def _send(payload: BaseModel, ctx) -> Any:
    path = taskhub_settings.SENDERS.get(ctx.name)
    sender = import_string(path) if path else log_sender
    return sender(payload, ctx)


@task("email.send", queue="email", schema=EmailPayload, max_attempts=5,
      retry=Exponential(base=2, cap=300))  # fmt: skip
def send_email(payload: EmailPayload, ctx) -> Any:
    return _send(payload, ctx)


@task("image.process", queue="image-processing", schema=ImagePayload, max_attempts=3,
      timeout=600)  # fmt: skip
def process_image(payload: ImagePayload, ctx) -> Any:
    return _send(payload, ctx)


@task("blockchain.handle_event", queue="blockchain-events", schema=BlockchainEventPayload,
      max_attempts=10, retry=Exponential(base=2, cap=600))  # fmt: skip
def handle_blockchain_event(payload: BlockchainEventPayload, ctx) -> Any:
    return _send(payload, ctx)


@task("notifications.deliver", queue="notifications", schema=NotificationPayload,
      max_attempts=5, retry=Exponential(base=2, cap=120))  # fmt: skip
def deliver_notification(payload: NotificationPayload, ctx) -> Any:
    return _send(payload, ctx)


#: endpoint suffix → task definition, for the /api/task-queue/<kind> views.
QUEUE_API_TASKS = {
    "email": send_email,
    "image-processing": process_image,
    "blockchain-event": handle_blockchain_event,
    "notification": deliver_notification,
}
