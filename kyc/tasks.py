"""KYC task types: ``kyc_verification`` (submission and status) and the decision notice."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from pydantic import BaseModel, Field, field_validator

from taskhub import PermanentError, Schedule, TaskType, task

from . import services
from .conf import kyc_settings
from .providers import ProviderRejected


class CaseRef(BaseModel):
    case_id: str
    submission: int = 1


class CallbackRef(BaseModel):
    provider: str
    external_id: str = Field(min_length=1, max_length=200)
    event_id: int | None = None


class Notification(BaseModel):
    to: str = Field(max_length=254)
    type: str = Field(max_length=100)
    message: str = Field(max_length=2000)
    metadata: dict = {}

    @field_validator("to")
    @classmethod
    def _is_email(cls, value: str) -> str:
        try:
            validate_email(value)
        except ValidationError:
            raise ValueError("not a valid e-mail address") from None
        return value


@task(
    "kyc.process_document",
    queue="kyc_verification",
    type=TaskType.KYC_VERIFICATION,
    schema=CaseRef,
    max_attempts=6,
    retry=Schedule([2, 5, 15, 60, 300]),
    timeout=60,
    external=False,
)
def process_document(payload: CaseRef, ctx) -> dict:
    """Submit the case's document to its provider and record the answer.

    As the check step of the ``kyc.verify`` workflow it also waits for the decision (callbacks
    move the row; a retry re-reads the provider too, in case a callback was lost)."""
    try:
        status = services.process_document(payload.case_id)
    except ProviderRejected as exc:
        raise PermanentError(str(exc)) from None
    if ctx.workflow is not None and status not in services.DECIDED:
        wait = float(kyc_settings.DECISION_WAIT_SECONDS)
        status = services.wait_for_decision(payload.case_id, wait)
        if status.status not in services.DECIDED:
            raise NotDecided(f"case is {status.status}; waiting for the provider's decision")
        status = status.status
    return {"case_id": payload.case_id, "status": status}


class NotDecided(Exception):
    """The provider has not decided yet: the kyc.verify run's check step retries later."""


@task(
    "kyc.notify_decision",
    queue="notifications",
    type=TaskType.NOTIFICATION_DELIVERY,
    schema=CaseRef,
    max_attempts=6,
    retry=Schedule([2, 5, 15, 60, 300]),
    timeout=60,
    external=False,
)
def notify_decision(payload: CaseRef, ctx) -> dict:
    """The ``kyc.verify`` run's notify step: tell the user the decision (once per submission)."""
    status = services.notify_decision(payload.case_id, payload.submission)
    return {"case_id": payload.case_id, "notified": status}


@task(
    "kyc.refresh_case",
    queue="kyc_verification",
    type=TaskType.KYC_VERIFICATION,
    schema=CallbackRef,
    max_attempts=8,
    retry=Schedule([1, 2, 5, 15, 60]),
    timeout=60,
    external=False,
)
def refresh_case(payload: CallbackRef, ctx) -> dict:
    """After a callback: re-read the case's status from the provider."""
    status = services.refresh_for_event(payload.provider, payload.external_id, payload.event_id)
    return {"external_id": payload.external_id, "status": status}


# Registered with the task types it uses (see payments/tasks.py for why here).
from . import workflows  # noqa: E402, F401
