"""The KYC app's settings: ``settings.KYC`` over documented defaults, read lazily."""

from __future__ import annotations

from typing import Any

from taskhub.conf import AppSettings

DEFAULTS: dict[str, Any] = {
    # The provider a document goes to when the request names none: "dtr" or "onramp".
    "DEFAULT_PROVIDER": "dtr",
    # Provider endpoints and credentials (the project points them at the local sandbox).
    "DTR_BASE_URL": "http://127.0.0.1:8100/dtr",
    "DTR_API_KEY": "",
    "DTR_API_SECRET": "",
    "DTR_WEBHOOK_SECRET": "",
    "ONRAMP_BASE_URL": "http://127.0.0.1:8100/onramp",
    "ONRAMP_API_KEY": "",
    "ONRAMP_API_SECRET": "",
    # Where providers send callbacks: this deployment's public base URL.
    "CALLBACK_BASE_URL": "http://127.0.0.1:8000",
    # Largest document accepted (bytes).
    "MAX_DOCUMENT_BYTES": 10 * 1024 * 1024,
    # In the kyc.verify workflow: how long one attempt waits for the provider's decision
    # (seconds) before it retries later.
    "DECISION_WAIT_SECONDS": 5.0,
}

kyc_settings = AppSettings("KYC", DEFAULTS)
