"""What the lifeline's unit tests share: a Redis that looks watched for long enough to be judged
from (taskhub.engine.redis_memory)."""

import pytest

from tests.support import watch_redis_long_enough


@pytest.fixture
def redis_kept_its_data(monkeypatch):
    """Redis has kept its data for longer than LIFELINE_TIMEOUT (as after a long quiet run),
    since before any row of the test was queued."""
    watch_redis_long_enough(monkeypatch, lambda real: real - 3600)
