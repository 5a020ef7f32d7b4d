"""What can be done to a KYC case; the API, admin actions and tasks call these.

Each submission of a document runs the ``kyc.verify`` workflow (kyc/workflows.py): ``check``
submits it and waits for the provider's decision (signed callbacks move the row), then
``notify`` tells the user the decision. Interim statuses (``in_review``) and changes after that
run has notified (``needs_review`` → ``approved`` later) notify at once, as they happen.
"""

from __future__ import annotations

import logging
import os
import time
import uuid

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.validators import EmailValidator, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

import taskhub
from taskhub.console.services import workflow_steps

from .conf import kyc_settings
from .models import (
    KYC_TERMINAL,
    DocumentType,
    KycCase,
    KycProvider,
    KycProviderEvent,
    KycStatus,
    UserKycStatus,
)
from .notify import notify_user
from .providers import CallbackRejected, ProviderCase, get_provider

logger = logging.getLogger("kyc")

PROCESS_TASK = "kyc.process_document"
VERIFY_WORKFLOW = "kyc.verify"
#: statuses the ``kyc.verify`` run waits for and then notifies about
DECIDED = {KycStatus.APPROVED, KycStatus.REJECTED, KycStatus.NEEDS_REVIEW, KycStatus.EXPIRED}
REFRESH_TASK = "kyc.refresh_case"
MESSAGES = {
    KycStatus.IN_REVIEW: "Your document was received and is being checked.",
    KycStatus.APPROVED: "Your identity is verified.",
    KycStatus.REJECTED: "We could not verify your document.",
    KycStatus.NEEDS_REVIEW: "Your document needs a manual review; we will let you know.",
    KycStatus.EXPIRED: "Your verification expired; please upload a new document.",
}
# needs_review can still resolve either way; the other terminal states never change.
ALLOWED = {
    KycStatus.PENDING: {"in_review", "approved", "rejected", "needs_review", "expired"},
    KycStatus.IN_REVIEW: {"approved", "rejected", "needs_review", "expired"},
    KycStatus.NEEDS_REVIEW: {"approved", "rejected", "expired"},
}


class KycRequestError(ValueError):
    def __init__(self, errors: dict[str, list[str]], status: int = 400):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors
        self.status = status


def _user_email(user_id: str, given: str) -> str:
    if given:
        return given
    users = get_user_model().objects
    user = users.filter(username=user_id).first()
    if user is None and user_id.isdigit():
        user = users.filter(pk=int(user_id)).first()
    return getattr(user, "email", "") or ""


def create_case(data, upload=None) -> KycCase:
    """Store the document (upload, or a reference to a stored file) and schedule the check."""
    errors: dict[str, list[str]] = {}
    user_id = str(data.get("user_id") or "").strip()
    if not user_id or len(user_id) > 200:
        errors["user_id"] = ["this field is required (at most 200 characters)"]
    provider = data.get("provider") or kyc_settings.DEFAULT_PROVIDER
    if provider not in KycProvider.values:
        errors["provider"] = [f"must be one of {', '.join(KycProvider.values)}"]
    document_type = data.get("document_type")
    if document_type not in DocumentType.values:
        errors["document_type"] = [f"must be one of {', '.join(DocumentType.values)}"]
    email = str(data.get("email") or "").strip()
    if email:
        try:
            EmailValidator()(email)
        except ValidationError:
            errors["email"] = ["not a valid e-mail address"]
    reference = data.get("document_ref")
    if (upload is None) == (not reference):
        errors["file"] = ["give either a file upload or a document_ref, not both"]
    elif upload is not None and upload.size > kyc_settings.MAX_DOCUMENT_BYTES:
        errors["file"] = [f"larger than {kyc_settings.MAX_DOCUMENT_BYTES} bytes"]
    elif upload is not None and upload.size == 0:
        errors["file"] = ["the file is empty"]
    elif reference and (
        ".." in str(reference)
        or str(reference).startswith("/")
        or not default_storage.exists(str(reference))
    ):
        errors["document_ref"] = ["no stored document at this reference"]
    if errors:
        raise KycRequestError(errors)
    case = KycCase(
        user_id=user_id,
        provider=provider,
        document_type=document_type,
        email=_user_email(user_id, email),
    )
    with transaction.atomic():
        if upload is not None:
            name = os.path.basename(upload.name)[:200] or "document"
            case.document_name = name
            case.document.save(f"{uuid.uuid4().hex}/{name}", upload, save=False)
        else:
            case.document_name = os.path.basename(str(reference))[:200]
            case.document.name = str(reference)
        case.save(force_insert=True)
        start_verification(case)
    return case


def start_verification(case: KycCase):
    """Start the ``kyc.verify`` run of the case's current submission (caller's transaction)."""
    run = taskhub.start_workflow(
        VERIFY_WORKFLOW,
        {"case_id": str(case.id), "submission": case.submission},
        idempotency_key=f"kyc:{case.id}:{case.submission}",
        correlation_id=case.correlation_id,
        user_id=case.user_id,
    )
    KycCase.objects.filter(id=case.id).update(workflow_run_id=run.id, decision_notice_pending=True)
    case.workflow_run_id, case.decision_notice_pending = run.id, True
    return run


def callback_url(provider: str) -> str:
    return f"{kyc_settings.CALLBACK_BASE_URL.rstrip('/')}/api/kyc/callbacks/{provider}"


def wait_for_decision(case_id, timeout: float, interval: float = 0.25) -> KycCase:
    """Re-read the case until the provider decided or ``timeout`` passes; return it."""
    deadline = time.monotonic() + timeout
    while True:
        case = KycCase.objects.get(id=case_id)
        if case.status in DECIDED or time.monotonic() >= deadline:
            return case
        time.sleep(interval)


def notify_decision(case_id, submission: int) -> str | None:
    """The ``kyc.verify`` run's notify step: tell the user the case's decision, once.

    Under the case's lock, so a callback applying a later change either comes before (and this
    tells the newest status) or after (and notifies on its own). Returns the status notified."""
    with transaction.atomic():
        case = KycCase.objects.select_for_update().get(id=case_id)
        if case.submission != submission or not case.decision_notice_pending:
            return None  # a newer submission's run notifies, or this one already did
        case.decision_notice_pending = False
        case.save(update_fields=["decision_notice_pending", "updated_at"])
        if case.status not in DECIDED:
            return None  # the check gave up; later changes notify as they happen
        _notify(case)
        return case.status


def _notify(case: KycCase) -> None:
    notify_user(
        user_id=case.user_id,
        type=f"kyc.{case.status}",
        message=MESSAGES[case.status],
        metadata={
            "case_id": str(case.id),
            "status": case.status,
            "reasons": case.reasons,
            "correlation_id": case.correlation_id,
        },
        email=case.email,
    )


def process_document(case_id: str) -> str:
    """Submit the document (the reference makes a retried submission the same provider case)."""
    case = KycCase.objects.get(id=case_id)
    if case.status in KYC_TERMINAL:
        return case.status
    if case.external_id:
        return refresh_case(case.id)
    with case.document.open("rb") as handle:
        content = handle.read()
    result = get_provider(case.provider).submit(case, content, callback_url(case.provider))
    return apply_provider_state(case.id, result).status


def refresh_case(case_id) -> str:
    case = KycCase.objects.get(id=case_id)
    if case.status in KYC_TERMINAL or not case.external_id:
        return case.status
    return apply_provider_state(
        case.id, get_provider(case.provider).status(case.external_id)
    ).status


def apply_provider_state(case_id, state: ProviderCase) -> KycCase:
    """Move the case forward (never back, never out of a final status) and notify the user."""
    with transaction.atomic():
        case = KycCase.objects.select_for_update().get(id=case_id)
        if not case.external_id:
            case.external_id = state.external_id
        if state.status == case.status or state.status not in ALLOWED.get(case.status, set()):
            case.save(update_fields=["external_id", "updated_at"])
            return case
        case.status = state.status
        case.reasons = list(state.reasons)
        if state.status in KYC_TERMINAL or state.status == KycStatus.NEEDS_REVIEW:
            case.decided_at = timezone.now()
        case.save()
        UserKycStatus.objects.update_or_create(
            user_id=case.user_id, defaults={"status": case.status, "case": case}
        )
        if not (case.decision_notice_pending and case.status in DECIDED):
            _notify(case)  # else the kyc.verify run's notify step tells the user
        logger.info("KYC case %s is %s", case.id, case.status)
        return case


def receive_callback(provider_name: str, headers, raw_body: bytes):
    """Verify (before parsing), store once per event id, schedule a re-read from the provider."""
    if provider_name not in KycProvider.values:
        raise CallbackRejected(f"unknown provider {provider_name!r}", 404)
    event = get_provider(provider_name).verify_callback(headers, raw_body)
    existing = KycProviderEvent.objects.filter(
        provider=provider_name, event_id=event.event_id
    ).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            stored = KycProviderEvent.objects.create(
                provider=provider_name,
                event_id=event.event_id,
                external_id=event.external_id,
                raw_body=raw_body.decode("utf-8", "replace"),
            )
            taskhub.schedule(
                REFRESH_TASK,
                {
                    "provider": provider_name,
                    "external_id": event.external_id,
                    "event_id": stored.id,
                },
            )
    except IntegrityError:
        return KycProviderEvent.objects.get(provider=provider_name, event_id=event.event_id), False
    return stored, True


def refresh_for_event(provider: str, external_id: str, event_id: int | None) -> str:
    case = KycCase.objects.filter(provider=provider, external_id=external_id).first()
    if case is None:
        raise LookupError(f"no KYC case with provider id {external_id} yet")
    status = refresh_case(case.id)
    if event_id:
        KycProviderEvent.objects.filter(id=event_id, processed_at=None).update(
            processed_at=timezone.now()
        )
    return status


def rerun_check(case: KycCase):
    """Operator action: submit the document again as a new submission and start over."""
    with transaction.atomic():
        KycCase.objects.filter(id=case.id).update(
            submission=case.submission + 1,
            external_id="",
            status=KycStatus.PENDING,
            reasons=[],
            decided_at=None,
            updated_at=timezone.now(),
        )
        case.refresh_from_db()
        run = start_verification(case)
        return workflow_steps(run.id)["check"]


def store_reference(name: str, content: bytes) -> str:
    """Store a document ahead of time (for ``document_ref`` requests); returns the reference."""
    return default_storage.save(
        f"kyc/refs/{uuid.uuid4().hex}/{os.path.basename(name)}", ContentFile(content)
    )
