import shutil
import socket
import subprocess
from urllib.parse import unquote, urlsplit

import pytest

from taskhub.engine.broker import broker_url, ensure_redis, get_redis, key

# taskhub's fixtures for projects' tests (taskhub_manual, taskhub_immediate; docs/testing.md),
# loaded the way docs/testing.md tells a project to. Fixtures only, nothing autouse: a test
# that does not ask for one runs as before. tests/testing uses them.
pytest_plugins = ["taskhub.pytest_plugin"]


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session", autouse=True)
def _rabbitmq_vhost():
    """On RabbitMQ (config/settings_test.py), this session's own vhost, removed at the end."""
    url = urlsplit(broker_url())
    if url.scheme not in ("amqp", "amqps") or not shutil.which("rabbitmqctl"):
        yield
        return
    vhost = unquote(url.path[1:])
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, url.username or "guest", ".*", ".*", ".*")
    yield
    import dramatiq

    dramatiq.get_broker().close()
    _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session", autouse=True)
def _redis_up():
    ensure_redis()
    yield
    # Remove this session's keys (never FLUSHALL: the Redis may be shared).
    client = get_redis()
    from taskhub.engine.broker import dramatiq_namespace

    for pattern in (key("*"), f"{dramatiq_namespace()}:*"):
        for name in client.scan_iter(match=pattern, count=1000):
            client.delete(name)


@pytest.fixture
def redis_client():
    return get_redis()


@pytest.fixture(scope="session", autouse=True)
def _flush_retries_on_deadlock():
    """End-to-end tests flush the database while worker processes still poll it; PostgreSQL's
    TRUNCATE can deadlock with a dispatcher transaction. The deadlock detector aborts one side:
    if it is the flush, try again (the dispatcher side already retries by design)."""
    import time

    from django.core.management.commands import flush
    from django.db import OperationalError

    original = flush.Command.handle

    def handle(self, *args, **options):
        for attempt in range(5):
            try:
                return original(self, *args, **options)
            except Exception as exc:  # flush wraps the OperationalError in a CommandError
                if attempt == 4 or not isinstance(exc.__cause__, OperationalError):
                    raise
                time.sleep(0.2)

    flush.Command.handle = handle
    yield
    flush.Command.handle = original


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_redis():
    """A Redis of this test's own: the drill flushes it, never the shared one."""
    from tests.support import start_private_redis

    port = _free_port()
    server = start_private_redis(port)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait()


@pytest.fixture
def make_stack(transactional_db):
    """Start worker/dispatcher stacks shaped for one test; all are stopped when it ends."""
    from tests.support import Stack

    started = []

    def make(**kwargs) -> Stack:
        running = Stack(**kwargs)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()
