"""Starting the provider sandbox (``python -m sandbox``) as a real process for a test session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from tests.support import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sandbox(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    (ROOT / "var" / "test-logs").mkdir(parents=True, exist_ok=True)
    log = open(ROOT / "var" / "test-logs" / f"sandbox-{time.time_ns()}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(port), "--callback-delay", "0.5"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_sandbox/health").status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the sandbox did not start")
