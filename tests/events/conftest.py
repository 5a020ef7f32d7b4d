"""Fixtures: a real uvicorn web process, real workers and a dispatcher, all on the test DB."""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.support import ROOT, Stack, child_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebServer:
    """``uvicorn config.asgi:application`` as production runs it, in its own process."""

    def __init__(self, settings: dict | None = None, env: dict[str, str] | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = child_env(TASKHUB_SETTINGS_JSON=json.dumps(settings or {}), **(env or {}))
        log_dir = ROOT / "var" / "test-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(log_dir / f"uvicorn-{time.time_ns()}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--lifespan",
                "off",
                "--timeout-graceful-shutdown",
                "2",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120  # shared 2-core machines start slowly
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/healthz", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("uvicorn did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class SSEClient:
    """Reads one event stream in a thread; ``events`` receives (type, id, data) tuples."""

    def __init__(self, url: str, headers: dict | None = None, params: dict | None = None):
        self.events: queue.Queue = queue.Queue()
        self.status: int | None = None
        self.body = b""
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(url, headers or {}, params or {}), daemon=True
        )
        self._thread.start()
        self._ready.wait(10)

    def _run(self, url, headers, params) -> None:
        try:
            with httpx.stream("GET", url, headers=headers, params=params, timeout=30) as resp:
                self._resp = resp
                self.status = resp.status_code
                self.headers = resp.headers
                if resp.status_code != 200:
                    self.body = resp.read()
                    return
                self._ready.set()
                fields: dict[str, str] = {}
                for line in resp.iter_lines():
                    if self._stop.is_set():
                        return
                    if line == "":
                        if "data" in fields:
                            data = json.loads(fields["data"])
                            self.events.put((fields.get("event"), fields.get("id"), data))
                        fields = {}
                    elif not line.startswith(":") and ":" in line:
                        name, _, value = line.partition(":")
                        fields[name] = value[1:] if value.startswith(" ") else value
        except httpx.HTTPError:
            pass
        finally:
            self._ready.set()

    def take_until(self, stop, timeout: float = 30) -> list[tuple]:
        """Events received until ``stop(event)`` is true for one of them (inclusive)."""
        got, deadline = [], time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"stream ended the wait without the event; got {got}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            got.append(event)
            if stop(event):
                return got

    def drain(self, seconds: float) -> list[tuple]:
        got, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(self.events.get(timeout=left))
            except queue.Empty:
                break
        return got

    def close(self) -> None:
        self._stop.set()
        resp = getattr(self, "_resp", None)
        if resp is not None:
            try:
                resp.close()
            except Exception:  # closing from another thread may race the reader; it ends anyway
                pass
        self._thread.join(5)


@pytest.fixture(scope="package")
def stack(django_db_setup, django_db_blocker):
    running = Stack(processes=1, threads=4)
    try:
        with django_db_blocker.unblock():
            running.start(wait_ready=False)
            running.wait_for_workers(1, timeout=120)  # shared 2-core machines start slowly
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="package")
def web(django_db_setup):
    server = WebServer({"EVENTS_MAX_STREAMS_PER_USER": 3, "EVENTS_TICKET_TTL": 2})
    yield server
    server.stop()


@pytest.fixture
def live(stack, web, transactional_db):
    """Workers, dispatcher and the ASGI web process; rows must be committed to be seen."""
    return web


@pytest.fixture
def operator_token(transactional_db) -> str:
    from taskhub.console.roles import OPERATOR, create_user

    _, _, token = create_user("events-operator", OPERATOR)
    return token


@pytest.fixture
def sse():
    opened = []

    def open_stream(url, **kwargs) -> SSEClient:
        client = SSEClient(url, **kwargs)
        opened.append(client)
        return client

    yield open_stream
    for client in opened:
        client.close()
