"""Real local servers for the built-in task tests: SMTP (aiosmtpd), HTTP files/pages, anvil."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parents[2]
ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"


def free_port() -> int:
    # aiosmtpd can't start on port 0 (it connects to the port to confirm startup).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordingHandler:
    """Accepts mail, except: ``tempfail…`` recipients get 451 on their first try, ``reject…``
    recipients always get 550."""

    def __init__(self):
        self.messages: list = []
        self.tried: dict[str, int] = {}
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.tried[address] = self.tried.get(address, 0) + 1
            tries = self.tried[address]
        if address.startswith("reject"):
            return "550 5.1.1 no such user here"
        if address.startswith("tempfail") and tries == 1:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list:
        with self.lock:
            return [m for rcpts, m in self.messages if address in rcpts]


class SmtpServer:
    def __init__(self):
        self.port = free_port()
        self.handler = RecordingHandler()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


class WebState:
    def __init__(self):
        self.files: dict[str, tuple[bytes, str, dict[str, str]]] = {}
        self.fail_first: dict[str, int] = {}  # path -> 503s still to answer
        self.pages: dict[str, list[list]] = {}
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()


def _handler(state: WebState):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(
            self,
            status: int,
            body: bytes,
            ctype: str = "application/octet-stream",
            headers: dict[str, str] | None = None,
        ):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading (a body over its limit)

        def do_GET(self):
            url = urlparse(self.path)
            with state.lock:
                state.hits[self.path] = state.hits.get(self.path, 0) + 1
                if state.fail_first.get(self.path, 0) > 0:
                    state.fail_first[self.path] -= 1
                    return self._send(503, b"busy, try later", "text/plain")
            if url.path.startswith("/files/"):
                found = state.files.get(url.path.removeprefix("/files/"))
                if found is None:
                    return self._send(404, b"not found", "text/plain")
                return self._send(200, *found)
            if url.path.startswith("/api/"):
                pages = state.pages.get(url.path.removeprefix("/api/"))
                if pages is None:
                    return self._send(404, b"not found", "text/plain")
                cursor = int(parse_qs(url.query).get("cursor", ["0"])[0])
                nxt = f"{cursor + 1}" if cursor + 1 < len(pages) else None
                body = {
                    "data": {"items": pages[cursor]},
                    "next": nxt,
                    "total": sum(len(p) for p in pages),
                }
                return self._send(200, json.dumps(body).encode(), "application/json")
            return self._send(404, b"not found", "text/plain")

    return Handler


class WebServer:
    def __init__(self):
        self.state = WebState()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> WebServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def add_file(
        self,
        name: str,
        body: bytes,
        ctype: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
    ) -> str:
        """Serve ``body`` as is at the returned URL, with extra ``headers`` (Content-Encoding…)."""
        self.state.files[name] = (body, ctype, headers or {})
        return f"{self.base}/files/{name}"


class Anvil:
    """anvil from node_modules (installed by `make` from package.json), on a fixed port."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return ANVIL.exists() and os.access(ANVIL, os.X_OK) or bool(shutil.which("anvil"))

    def start(self) -> Anvil:
        binary = str(ANVIL) if ANVIL.exists() else shutil.which("anvil")
        self.proc = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", str(self.port), "--silent"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("anvil did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
