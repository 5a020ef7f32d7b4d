import socket
import threading
import time

import pytest
from django.db import connection, connections
from django.test import Client

from taskhub.console.roles import create_user
from tests.admin.browser_support import CHROMIUM, FLAGS, require_browser


@pytest.fixture
def login(db):
    """A browser-like client logged in with a role."""

    def client(role: str) -> Client:
        user, _, _ = create_user(f"{role}-person", role)
        browser = Client()
        browser.force_login(user)
        return browser

    return client


@pytest.fixture
def live_server_url(transactional_db, monkeypatch):
    """The project's ASGI app on uvicorn in a thread, on a free port."""
    import uvicorn

    from config.asgi import application

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # The server's request threads close their connections after each request, so none is left
    # holding the test database when it is dropped.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        application, lifespan="off", log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def browser():
    """Headless Chromium (Debian's, never a downloaded one) driven by Playwright."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()
        # ORM calls made while Playwright's loop ran may hold a connection of their own
        # (Django keeps connections per async context); close it before the database goes.
        connections.close_all()
