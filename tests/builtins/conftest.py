"""Servers and a worker stack for the built-in task tests.

The SMTP and HTTP servers run in this process (threads); anvil runs from node_modules on a port
chosen up front, so the workers' settings (EMAIL_*, BLOCKCHAIN_RPC_URLS) are fixed at start."""

import json
import os
import time

import pytest

from tests.builtins.servers import Anvil, SmtpServer, WebServer, free_port
from tests.support import Stack

ANVIL_PORT = free_port()
ALERT_ENV = {
    "TASKHUB_ALERT_EMAILS": "ops@example.com",
    "TASKHUB_ALERT_TASKS": "test.permanent",
    "TASKHUB_ALERT_DELAY_SECONDS": "4",
    "TASKHUB_ALERT_THROTTLE_SECONDS": "120",
}


@pytest.fixture(scope="session")
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def web():
    server = WebServer().start()
    yield server
    server.stop()


def stack_env(smtp: SmtpServer) -> dict[str, str]:
    return {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp.port),
        "EMAIL_TIMEOUT": "5",
        "BLOCKCHAIN_RPC_URLS": json.dumps({"31337": f"http://127.0.0.1:{ANVIL_PORT}"}),
        **ALERT_ENV,
    }


@pytest.fixture(scope="package")
def builtin_stack(django_db_setup, django_db_blocker, smtp):
    """One worker process (4 threads) and a dispatcher for the built-in task tests. Package
    scope: left running, it would take other packages' e-mails to this package's SMTP server."""
    running = Stack(processes=1, threads=4, env=stack_env(smtp))
    try:
        with django_db_blocker.unblock():
            running.start(wait_ready=False)
            running.wait_for_workers(1, timeout=90)  # generous: the CI machine may be busy
        yield running
    finally:
        running.stop()


@pytest.fixture
def e2e(builtin_stack, transactional_db):
    yield builtin_stack
    # Let follow-up work (e-mails a notification scheduled…) finish before the tables are
    # flushed: a flush racing a busy worker can deadlock on PostgreSQL.
    from taskhub.models import ACTIVE_STATUSES, Task

    deadline = time.monotonic() + 30
    while Task.objects.filter(status__in=ACTIVE_STATUSES).exists() and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.fixture(scope="session")
def anvil():
    if not Anvil.available():
        if os.environ.get("CI"):
            pytest.fail("anvil is missing: `make test` installs it from package.json (npm ci)")
        pytest.skip("anvil is not installed (run `npm ci`)")
    node = Anvil(ANVIL_PORT).start()
    yield node
    node.stop()


@pytest.fixture
def chain_settings(settings):
    """This process talks to the same anvil as the workers."""
    settings.BLOCKCHAIN = {
        **settings.BLOCKCHAIN,
        "RPC_URLS": {"31337": f"http://127.0.0.1:{ANVIL_PORT}"},
    }
    return settings
