"""The payments settings (``settings.PAYMENTS``), read at use time so tests can override them."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from taskhub.conf import AppSettings

DEFAULTS: dict[str, Any] = {
    "DTR_BASE_URL": "http://127.0.0.1:8100/dtr",
    "DTR_API_KEY": "",
    "DTR_API_SECRET": "",
    "DTR_WEBHOOK_SECRET": "",
    "CALLBACK_BASE_URL": "http://127.0.0.1:8000",
    "STUCK_AFTER_SECONDS": 300.0,
    # How long one attempt of the settle workflow's payment step waits for the provider's
    # outcome (callbacks and the stuck-payment cron move the row) before retrying later.
    "SETTLE_WAIT_SECONDS": 5.0,
    "SAFE_BACKEND": "rpc",
    "CHAIN_RPC_URL": "",
    "CHAIN_ID": None,
    "SAFE_SERVER_KEY": "",
    "SAFE_RELAYER_KEY": "",
    "SAFE_TX_SERVICE_URL": "",
    "CONFIRMATION_DEPTH": 1,
    # Widest eth_getLogs range asked of the node when looking for a Safe's execution: hosted
    # nodes refuse wider queries (often above 2,000 or 10,000 blocks).
    "LOG_SEARCH_BLOCKS": 2000,
    # Test hook for the crash drill: seconds to sleep right after execTransaction is sent and
    # before that is recorded, so a test can kill the worker in exactly that window.
    "PAUSE_AFTER_SUBMIT": 0.0,
    "HTTP_TIMEOUT": 10.0,
}


payments_settings = AppSettings(
    "PAYMENTS", DEFAULTS, types={"CHAIN_ID": (int, type(None)), "CONFIRMATION_DEPTH": int}
)


def callback_tolerance() -> int:
    return int(getattr(settings, "CALLBACK_TOLERANCE_SECONDS", 300))
