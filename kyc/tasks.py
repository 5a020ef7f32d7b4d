"""KYC task types: ``kyc_verification`` (submission and status) and ``notification_delivery``."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from pydantic import BaseModel, Field, field_validator

from taskhub import Exponential, PermanentError, Schedule, task

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


@task(
    "kyc.send_notification_email", queue="notification_delivery", schema=Notification,
    max_attempts=5, retry=Exponential(base=2, cap=60), timeout=30,
)  # fmt: skip
def send_notification_email(payload: Notification, ctx) -> dict:
    """E-mail a KYC status change to the user (until the notifications app takes over)."""
    subject = {
        "kyc.approved": "Your identity is verified",
        "kyc.rejected": "We could not verify your document",
        "kyc.needs_review": "Your document needs a manual review",
        "kyc.in_review": "We are checking your document",
        "kyc.expired": "Your verification expired",
    }.get(payload.type, "Your verification status changed")
    reasons = payload.metadata.get("reasons") or []
    body = payload.message + ("\n\nReasons: " + "; ".join(reasons) if reasons else "")
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [payload.to])
    return {"to": payload.to, "type": payload.type}
