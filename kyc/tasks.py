"""KYC task types: ``kyc_verification`` (submission and status) and ``notification_delivery``."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from pydantic import BaseModel, Field, field_validator

from taskhub import PermanentError, Schedule, task

from . import services
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
    "kyc.process_document", queue="kyc_verification", schema=CaseRef,
    max_attempts=6, retry=Schedule([2, 5, 15, 60, 300]), timeout=60,
)  # fmt: skip
def process_document(payload: CaseRef, ctx) -> dict:
    """Submit the case's document to its provider and record the answer."""
    try:
        status = services.process_document(payload.case_id)
    except ProviderRejected as exc:
        raise PermanentError(str(exc)) from None
    return {"case_id": payload.case_id, "status": status}


@task(
    "kyc.refresh_case", queue="kyc_verification", schema=CallbackRef,
    max_attempts=8, retry=Schedule([1, 2, 5, 15, 60]), timeout=60,
)  # fmt: skip
def refresh_case(payload: CallbackRef, ctx) -> dict:
    """After a callback: re-read the case's status from the provider."""
    status = services.refresh_for_event(payload.provider, payload.external_id, payload.event_id)
    return {"external_id": payload.external_id, "status": status}
