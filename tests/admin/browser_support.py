"""What the console's browser tests share: where Chromium is, the artifacts folder, logging in,
and catching a page's script errors and failed requests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "var" / "test-artifacts"
#: Screenshots the docs show (docs/console.md); written only when UPDATE_SCREENSHOTS is set.
SCREENSHOTS = REPO / "docs" / "screenshots"


def require_browser() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs it (apt chromium)")
    pytest.skip("Chromium is not installed here (apt-get install chromium); CI runs this test")


def log_in(page, base_url: str, username: str, password: str, then: str) -> None:
    page.goto(f"{base_url}/admin/login/?next={then}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def collect_errors(page) -> list[str]:
    """A list that fills with the page's uncaught script errors and 4xx/5xx answers."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "response",
        lambda r: (
            r.status >= 400
            and not r.url.endswith("/favicon.ico")
            and errors.append(f"{r.status} {r.url}")
        ),
    )
    return errors


def screenshot(target, name: str) -> Path:
    """Save a page's or element's screenshot: under docs/screenshots when UPDATE_SCREENSHOTS is
    set (the docs' pictures, committed), else with the other test artifacts."""
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    target.screenshot(path=str(path))
    return path
