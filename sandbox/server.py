"""HTTP plumbing: a threaded stdlib server, a route table, a callback sender."""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

logger = logging.getLogger("sandbox")


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict
    body: bytes
    match: re.Match

    def json(self) -> dict:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            raise HttpError(400, "body is not JSON") from None
        if not isinstance(value, dict):
            raise HttpError(400, "body must be a JSON object")
        return value


@dataclass
class Config:
    dtr_api_key: str = "sandbox-dtr-key"
    dtr_api_secret: str = "sandbox-dtr-api-secret"
    dtr_webhook_secret: str = "sandbox-dtr-webhook"
    onramp_api_key: str = "sandbox-onramp-key"
    onramp_api_secret: str = "sandbox-onramp-secret"
    chain_rpc_url: str = ""
    callback_delay: float = 0.5

    @classmethod
    def from_env(cls, **overrides) -> Config:
        values = {}
        for name in cls.__dataclass_fields__:
            env = os.environ.get(f"SANDBOX_{name.upper()}")
            if env is not None and name != "callback_delay":
                values[name] = env
        return cls(**{**values, **overrides})


@dataclass
class Callback:
    url: str
    body: bytes
    headers: dict
    sent_at: float = 0.0
    status: int | None = None
    kind: str = ""


@dataclass
class Outbox:
    """Sends callbacks in the background, each after its delay, retrying a few times."""

    sent: list = field(default_factory=list)
    _queue: queue.Queue = field(default_factory=queue.Queue)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name="sandbox-callbacks").start()

    def later(self, delay: float, make: Callable[[], Callback | None]) -> None:
        """``make`` runs when due (so the decision and its signature are made then)."""
        self._queue.put((time.monotonic() + delay, make))

    def _run(self) -> None:
        pending: list = []
        while True:
            try:
                pending.append(self._queue.get(timeout=0.05))
            except queue.Empty:
                pass
            now = time.monotonic()
            due = [p for p in pending if p[0] <= now]
            pending = [p for p in pending if p[0] > now]
            for _, make in due:
                callback = make()
                if callback is not None:
                    threading.Thread(target=self._deliver, args=(callback,), daemon=True).start()

    def _deliver(self, callback: Callback) -> None:
        for attempt in range(4):
            request = urllib.request.Request(
                callback.url,
                data=callback.body,
                method="POST",
                headers={"Content-Type": "application/json", **callback.headers},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    callback.status = response.status
            except urllib.error.HTTPError as exc:
                callback.status = exc.code
            except OSError as exc:
                callback.status = None
                logger.warning("callback to %s failed: %s", callback.url, exc)
            callback.sent_at = time.time()
            self.sent.append(callback)
            if callback.status is not None and callback.status < 500:
                return
            time.sleep(1 + attempt)


Route = tuple[str, re.Pattern, Callable[[Request], tuple[int, dict]]]


class Handler(BaseHTTPRequestHandler):
    routes: list[Route] = []
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:
        logger.info("%s %s", self.command, self.path)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        status, payload = 404, {"error": f"no route for {self.command} {path}"}
        for method, pattern, view in self.routes:
            match = pattern.fullmatch(path)
            if match and method == self.command:
                request = Request(self.command, path, query, dict(self.headers), body, match)
                try:
                    status, payload = view(request)
                except HttpError as exc:
                    status, payload = exc.status, {"error": str(exc)}
                except Exception as exc:  # a sandbox bug: answer 500 like a real service would
                    logger.exception("sandbox error")
                    status, payload = 500, {"error": type(exc).__name__}
                break
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


def build_routes(config: Config, outbox: Outbox) -> list[Route]:
    from . import dtr, onramp, safe_tx_service

    routes: list[Route] = []
    for module in (dtr, onramp, safe_tx_service):
        routes += module.routes(config, outbox)

    def health(request: Request):
        return 200, {"ok": True}

    def callbacks(request: Request):
        """Every callback sent so far (tests replay them to prove deduplication)."""
        return 200, {
            "callbacks": [
                {
                    "url": c.url,
                    "kind": c.kind,
                    "status": c.status,
                    "body": c.body.decode(),
                    "headers": c.headers,
                }
                for c in outbox.sent
            ]
        }

    routes += [
        ("GET", re.compile(r"/_sandbox/health"), health),
        ("GET", re.compile(r"/_sandbox/callbacks"), callbacks),
    ]
    return routes


def serve(host: str, port: int, callback_delay: float = 0.5) -> None:
    config = Config.from_env(callback_delay=callback_delay)
    outbox = Outbox()
    outbox.start()

    class SandboxHandler(Handler):
        routes = build_routes(config, outbox)

    try:
        server = ThreadingHTTPServer((host, port), SandboxHandler)
    except OSError as exc:
        # Under `taskhub up` a dead child stops the whole stack; a busy sandbox port is a
        # development inconvenience, not a reason for that. Say so loudly and stay idle.
        logger.error(
            "sandbox cannot listen on %s:%s (%s); set TASKHUB_SANDBOX_URL to a free "
            "port. Idle until stopped.",
            host,
            port,
            exc,
        )
        threading.Event().wait()
        return
    server.daemon_threads = True
    logger.info("sandbox listening on http://%s:%s", host, port)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
