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
