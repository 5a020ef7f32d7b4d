"""Outgoing webhooks: endpoints, signed deliveries (Standard Webhooks), retries, cleanup.

    from webhooks import publish, verify

Every delivery attempt is a taskhub task on the ``webhooks`` queue.
"""

from typing import Any

_EXPORTS = {
    "publish": "webhooks.services",
    "verify": "webhooks.signing",
    "WebhookVerificationError": "webhooks.signing",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the package doesn't import Django models before apps are ready.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
