import pytest

from taskhub.broker import ensure_redis, get_redis, key


@pytest.fixture(scope="session", autouse=True)
def _redis_up():
    ensure_redis()
    yield
    # Remove this session's keys (never FLUSHALL: the Redis may be shared).
    client = get_redis()
    from taskhub.broker import dramatiq_namespace

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
