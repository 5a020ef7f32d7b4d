"""Real local servers for the KYC tests: the sandbox, an SMTP server (aiosmtpd), the web server
for callbacks, and worker + dispatcher processes."""

from __future__ import annotations

import email
import email.policy
import threading

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings

from tests.sandbox_support import free_port, start_sandbox
from tests.support import Stack


class Inbox:
    """Collects every message the SMTP server receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list:
        with self.lock:
            return [m for m in self.messages if address in m["To"]]


@pytest.fixture(scope="session")
def smtp():
    inbox = Inbox()
    # port=0 does not work with aiosmtpd's Controller (it connects to the port to start).
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


@pytest.fixture(scope="session")
def kyc_servers(smtp, live_server):
    proc, url = start_sandbox({})
    saved = dict(settings.KYC)
    settings.KYC.update(
        {
            "DTR_BASE_URL": f"{url}/dtr",
            "ONRAMP_BASE_URL": f"{url}/onramp",
            "CALLBACK_BASE_URL": live_server.url,
        }
    )
    env = {
        "TASKHUB_DTR_BASE_URL": f"{url}/dtr",
        "TASKHUB_ONRAMP_BASE_URL": f"{url}/onramp",
        "TASKHUB_PUBLIC_URL": live_server.url,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp.port),
    }
    yield {"sandbox": url, "env": env}
    settings.KYC.clear()
    settings.KYC.update(saved)
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, kyc_servers):
    running = Stack(processes=1, threads=4, env=kyc_servers["env"])
    with django_db_blocker.unblock():
        try:
            running.start()
        except BaseException:
            running.stop()  # never leave processes behind on the test database
            raise
    yield running
    running.stop()


@pytest.fixture
def e2e(stack, transactional_db):
    return stack
