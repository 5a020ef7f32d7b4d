"""A saga written in the Queue Worker document's shape, through the REST API, real workers and a
real HTTP server: http.request steps, the second fails, and the first is undone by its
compensation's own payload (``DELETE /orders/42``), not by replaying its forward request."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.test import APIClient

from taskhub.console.roles import create_user

from .support import statuses_of, step, wait_run

pytestmark = pytest.mark.e2e


class Shop:
    """An HTTP server that records every request; ``POST /payments`` is declined (402)."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict | None, str]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def _handler(self):
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with shop.lock:
                    shop.requests.append(
                        (
                            self.command,
                            self.path,
                            json.loads(raw) if raw else None,
                            self.headers.get("X-Reason", ""),
                        )
                    )
                status = 402 if self.path == "/payments" else 200
                body = b'{"ok": true}' if status == 200 else b"card declined"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_DELETE = _answer

        return Handler

    def __enter__(self) -> Shop:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api(e2e):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {create_user('saga-operator', 'operator')[2]}")
    return client


def test_a_saga_of_http_requests_undoes_step_one_with_its_compensations_own_payload(api):
    with Shop() as shop:
        document = {
            "initialTask": "reserve",
            "transitions": [
                {
                    "name": "reserve",
                    "type": "http.request",
                    "payload": {
                        "method": "POST",
                        "url": f"{shop.url}/orders/42/reserve",
                        "json": {"qty": 1},
                    },
                    "compensation": {
                        "type": "http.request",
                        "payload": {
                            "method": "DELETE",
                            "url": f"{shop.url}/orders/42",
                            "headers": {"X-Reason": "$input.reason"},
                        },
                    },
                },
                {
                    "name": "charge",
                    "type": "http.request",
                    "payload": {"method": "POST", "url": f"{shop.url}/payments", "json": {"n": 42}},
                    "maxAttempts": 1,
                },
                {
                    "name": "ship",
                    "type": "http.request",
                    "payload": {"method": "POST", "url": f"{shop.url}/shipments"},
                },
            ],
        }
        stored = api.post(
            "/api/workflow-definitions",
            {
                "name": "order-saga",
                "definition": document,
                "isActive": True,
                "on_failure": "compensate",
            },
            format="json",
        )
        assert stored.status_code == 201, stored.json()
        started = api.post(
            "/api/workflows",
            {"definition": "order-saga", "input": {"reason": "payment declined"}},
            format="json",
        )
        assert started.status_code == 201, started.json()

        run = wait_run(started.json()["id"], "compensated", timeout=60)

        assert shop.requests == [
            ("POST", "/orders/42/reserve", {"qty": 1}, ""),
            ("POST", "/payments", {"n": 42}, ""),
            ("DELETE", "/orders/42", None, "payment declined"),
        ]
    assert statuses_of(run) == {
        "reserve": "completed",
        "charge": "failed",
        "ship": "skipped",
        "compensate:reserve": "completed",
    }
    undo = step(run, "compensate:reserve")
    assert undo.name == "http.request" and undo.compensates_id == step(run, "reserve").id
    assert undo.payload["method"] == "DELETE" and undo.payload["url"] == f"{shop.url}/orders/42"
    assert run.error.startswith("step charge failed")
