"""How long Redis has kept its data, as the lifeline has watched it: until that is at least one
LIFELINE_TIMEOUT, a key missing from Redis is no evidence of anything.

Workers re-assert what Redis should hold for them — their liveness key and the claims of the
attempts they run — on every heartbeat (taskhub.engine.worker.Heartbeat). Right after Redis lost its
data (restarted without persistence, or flushed), or after the lifeline could not reach it, a
missing liveness key or claim only means the workers have not had their turn yet: judging then
would call live workers dead and send running attempts out again.

The lifeline keeps a marker key holding the Redis time since which it has watched Redis keep
its data. The marker is set afresh when it is missing (data lost), when Redis's uptime is
shorter than the marker's age (restarted from an older snapshot), and after this process's
lifeline failed to reach Redis. Keys read for a judgement are read together with the marker,
so data lost between the check and the read is noticed.

A second key holds the Redis time since which Redis has held its current data: reset only when
the data was lost (missing, or Redis restarted since), not when the lifeline lost sight of it.
A claim made before that time may be gone with the data (``RedisMemory.kept_since``). The
dispatcher looks at Redis before it sends anything, so on a new Redis every message it sends
is younger than the data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from ..conf import taskhub_settings
from .broker import get_redis, key

logger = logging.getLogger(__name__)

_lost_sight = False  # this process's lifeline failed to reach Redis since it last looked
#: The errors that mean Redis could not be reached (a refused or lost connection, a timeout,
#: a Redis still loading its data after a restart).
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)


def marker_key() -> str:
    return key("lifeline", "watching-since")


def kept_key() -> str:
    return key("lifeline", "data-since")


@dataclass(frozen=True)
class RedisMemory:
    """What the lifeline saw of Redis at the start of a cycle."""

    #: The marker's value (the Redis time the watch started), or None if Redis did not answer.
    since: bytes | None
    #: Seconds Redis has kept its data while watched.
    age: float
    #: The Redis time (epoch seconds) since which Redis has held its current data, or None if
    #: Redis did not answer: a key written before it may have been lost.
    kept_since: float | None = None

    @property
    def reachable(self) -> bool:
        return self.since is not None

    @property
    def trusted(self) -> bool:
        """Every live worker has had a full LIFELINE_TIMEOUT to re-assert its keys."""
        return self.reachable and self.age >= taskhub_settings.LIFELINE_TIMEOUT

    def read(self, keys: list[str]) -> list[bytes | None] | None:
        """The values of ``keys``, or None if Redis lost its data since this was observed."""
        marker, *values = get_redis().mget([marker_key(), *keys])
        return values if marker == self.since else None


def lost_sight() -> None:
    """The lifeline could not reach Redis: what Redis lacks proves nothing until watched anew."""
    global _lost_sight
    _lost_sight = True


def observe() -> RedisMemory:
    """Look at Redis (one round trip, two if the watch starts over)."""
    global _lost_sight
    try:
        client = get_redis()
        pipe = client.pipeline(transaction=False)
        pipe.time()
        pipe.get(marker_key())
        pipe.get(kept_key())
        pipe.info("server")
        # A Redis that refuses INFO (some hosted ones do) only loses the restart check.
        (seconds, micros), since, kept, info = pipe.execute(raise_on_error=False)
        now = seconds + micros / 1e6
        uptime = info.get("uptime_in_seconds") if isinstance(info, dict) else None

        def restarted_after(value: bytes | None) -> bool:
            # Uptime is in whole seconds: a key set in Redis's first second may look older.
            return value is not None and uptime is not None and uptime + 1 < now - float(value)

        if kept is None or restarted_after(kept):
            kept = f"{now:.6f}".encode()
            client.set(kept_key(), kept)
        if since is None or restarted_after(since) or _lost_sight:
            since = f"{now:.6f}".encode()
            client.set(marker_key(), since)
            logger.info("lifeline: watching Redis afresh (its data may be incomplete)")
        _lost_sight = False
        return RedisMemory(since=since, age=now - float(since), kept_since=float(kept))
    except (redis.RedisError, OSError) as exc:
        logger.warning("lifeline: no answer from Redis, judging nothing from it: %s", exc)
        lost_sight()
        return RedisMemory(since=None, age=0.0)
