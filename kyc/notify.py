"""The one place KYC notifies a user: through the notifications app's ``notify_user`` (in-app
row, e-mail, webhook event), called in the caller's transaction so nothing is sent on rollback.
"""

from __future__ import annotations

from notifications.services import notify_user as deliver

SUBJECTS = {
    "kyc.approved": "Your identity is verified",
    "kyc.rejected": "We could not verify your document",
    "kyc.needs_review": "Your document needs a manual review",
    "kyc.in_review": "We are checking your document",
    "kyc.expired": "Your verification expired",
}


def notify_user(*, user_id: str, type: str, message: str, metadata: dict, email: str = "") -> None:
    """Notify the user of a KYC status change; ``email`` is where the e-mail channel sends."""
    reasons = metadata.get("reasons") or []
    deliver(
        user_id,
        type,
        message,
        metadata={
            **metadata,
            "email": email,
            "template": "kyc_status_changed",
            "subject": SUBJECTS.get(type, "Your verification status changed"),
            "reason": "; ".join(reasons),
        },
    )
