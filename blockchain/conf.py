"""The blockchain indexer's settings: ``settings.BLOCKCHAIN`` over documented defaults."""

from __future__ import annotations

from typing import Any

from taskhub.conf import AppSettings

DEFAULTS: dict[str, Any] = {
    # JSON-RPC URL per network (chain) id, e.g. {"8453": "https://…"}.
    "RPC_URLS": {},
    # Most blocks asked for in one eth_getLogs call.
    "MAX_BLOCK_RANGE": 2000,
    # How far back the indexer re-checks block hashes when it finds its cursor block replaced.
    "REORG_LOOKBACK": 128,
    # Seconds one JSON-RPC call may take.
    "RPC_TIMEOUT": 15.0,
}

blockchain_settings = AppSettings("BLOCKCHAIN", DEFAULTS)
