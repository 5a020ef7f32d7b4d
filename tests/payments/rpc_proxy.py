"""A JSON-RPC proxy in front of anvil that behaves like a hosted node provider where it matters.

* ``eth_getLogs`` over more than ``max_log_blocks`` blocks is refused, as hosted providers
  refuse wide log queries ("block range too large"): a search from block 0 fails.
* ``before``: a callable run once, in the proxy's thread, before the first request of a given
  method is forwarded — the test acts on the chain (directly on anvil) at exactly that point of
  our code, e.g. executes the SafeTx from another account just before our gas estimate.
* ``failing``: methods answered with a JSON-RPC error while listed (a node outage).
* every ``eth_getLogs`` range asked for is recorded, with the time it was asked.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class RpcProxy:
    def __init__(self, upstream: str, max_log_blocks: int = 2000):
        self.upstream = upstream
        self.max_log_blocks = max_log_blocks
        self.before: dict[str, Callable[[list], None]] = {}
        self.failing: set[str] = set()
        self.log_ranges: list[tuple[int, int, float]] = []
        self.methods: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RpcProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _head(self) -> int:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
        return int(httpx.post(self.upstream, json=body).json()["result"], 16)

    def _block(self, tag, head: int) -> int:
        if tag in (None, "latest", "pending", "safe", "finalized"):
            return head
        return 0 if tag == "earliest" else int(tag, 16) if isinstance(tag, str) else int(tag)

    def _refusal(self, request: dict) -> str | None:
        method = request.get("method")
        with self._lock:
            self.methods.append(method)
            hook = self.before.pop(method, None)
        if hook is not None:
            hook(request.get("params") or [])
        if method in self.failing:
            return f"{method} is unavailable (proxy outage)"
        if method != "eth_getLogs":
            return None
        query = (request.get("params") or [{}])[0]
        head = self._head()
        low, high = (
            self._block(query.get("fromBlock"), head),
            self._block(query.get("toBlock"), head),
        )
        with self._lock:
            self.log_ranges.append((low, high, time.time()))
        if high - low + 1 > self.max_log_blocks:
            return f"block range too large: {high - low + 1} > {self.max_log_blocks}"
        return None

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the http.server API)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = json.loads(raw)
                refusal = proxy._refusal(request)
                if refusal is None:
                    answer = httpx.post(
                        proxy.upstream,
                        content=raw,
                        timeout=30,
                        headers={"Content-Type": "application/json"},
                    ).content
                else:
                    answer = json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": request.get("id"),
                            "error": {"code": -32005, "message": refusal},
                        }
                    ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        return Handler
