"""Dramatiq's Redis broker, adapted to how taskhub uses it.

- No delay queues: the task rows hold every schedule and the dispatcher releases work when it
  is due, so Dramatiq's ``.DQ`` queues would only add idle polling to every worker.
- Consumers wait for a nudge instead of sleeping blind: Dramatiq's Redis consumer polls an
  empty queue with a growing sleep (up to its idle timeout), which adds that sleep to the start
  of every task arriving on a quiet queue. The dispatcher pushes a token on
  ``<namespace>:<queue>.notify`` with each batch it sends, and an idle consumer BLPOPs it.
- Each fetched batch is announced (``on_fetched``) before any of it reaches a worker thread —
  the worker runtime claims the batch's attempts there, in one round trip — and messages
  handed back unstarted (``on_requeued``; also those still cached when the consumer closes)
  let their claims go.
- A dispatcher's batch goes in with one script call per queue (``enqueue_many``) instead of
  Dramatiq's one script call per message.
- Acks don't hold the worker thread: they go out with the process's next shared round trip
  (``taskhub.engine.redis_batch``), many per script call; a refused ack is kept and sent again, and
  what is pending is sent when the consumer closes. A message whose ack was lost with its
  process is delivered again and dropped by its attempt's claim (docs/architecture.md, "No
  double start").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

from .redis_batch import SharedRoundTrips

# KEYS: the heartbeats set, this broker's ack set of the queue, the queue's message hash.
# ARGV: now (ms), the broker id, then the message ids. What Dramatiq's own "ack" does, for many,
# except that the body goes even if the ack set no longer lists the message: the lifeline drops
# the ack sets of a consumer it presumed dead, and a body only an ack would remove stayed
# forever. (Dramatiq keeps it for a message requeued before its ack; taskhub requeues only
# messages no thread took, which are never acked.)
_ACK_MANY_SCRIPT = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
for i = 3, #ARGV do
    redis.call('SREM', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
end
"""

# KEYS: an ack set of a consumer presumed dead, the queue's message hash. Drops the set and the
# bodies of the messages it lists (the lifeline sent their attempts again as new messages).
_DROP_ACKS_SCRIPT = """
local ids = redis.call('SMEMBERS', KEYS[1])
for i = 1, #ids, 500 do
    redis.call('HDEL', KEYS[2], unpack(ids, i, math.min(i + 499, #ids)))
end
redis.call('DEL', KEYS[1])
return #ids
"""

# KEYS: the queue, its message hash, its nudge list. ARGV: nudges to push, then (message id,
# encoded message) pairs in the order they should be consumed.
_ENQUEUE_MANY_SCRIPT = """
for i = 2, #ARGV, 2 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    redis.call('RPUSH', KEYS[1], ARGV[i])
end
for i = 1, tonumber(ARGV[1]) do
    redis.call('LPUSH', KEYS[3], 1)
end
redis.call('EXPIRE', KEYS[3], 5)
"""


#: Keys SCAN looks at per round trip when the lifeline looks for a dead consumer's ack sets.
SCAN_PAGE = 1000


def notify_key(namespace: str, queue: str) -> str:
    return f"{namespace}:{queue}.notify"


class NudgedRedisConsumer(_RedisConsumer):
    """Dramatiq's consumer with the idle sleep replaced by a BLPOP on the queue's nudge list,
    and the busy sleep by a wait for the next ack."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slot_freed = threading.Event()

    def __next__(self):
        try:
            while True:
                if self.message_cache:
                    message = self.message_cache.pop(0)
                    self.misses = 0
                    self.queued_message_ids.add(message.message_id)
                    return message
                if self.outstanding_message_count >= self.prefetch:
                    # Every thread is busy and the prefetch is full: no point asking Redis
                    # until a message is acked. Waiting for that ack (rather than sleeping a
                    # growing back-off, as Dramatiq does) refills the work queue the moment a
                    # slot frees, so worker threads don't sit idle behind a sleeping consumer.
                    self._slot_freed.clear()
                    if self.outstanding_message_count >= self.prefetch:
                        self._slot_freed.wait(max(0.01, self.timeout / 1000))
                    return None
                wanted = self.prefetch - self.outstanding_message_count
                fetched = [d for d in self.broker.do_fetch(self.queue_name, wanted) if d]
                if not fetched:
                    key = notify_key(self.broker.namespace, self.queue_name)
                    self.broker.client.blpop([key], timeout=max(0.01, self.timeout / 1000))
                    return None
                self.message_cache = [MessageProxy(Message.decode(d)) for d in fetched]
                self.broker.emit_fetched(self.message_cache)
        except redis.ConnectionError as e:
            raise ConnectionClosed(e) from None

    def ack(self, message) -> None:
        self.queued_message_ids.discard(message.message_id)
        self.broker.acks.note(self.queue_name, message.options["redis_message_id"])
        self._slot_freed.set()

    def nack(self, message) -> None:
        try:
            super().nack(message)
        finally:
            self._slot_freed.set()

    def requeue(self, messages) -> None:
        messages = list(messages)
        self.broker.emit_requeued(messages)
        super().requeue(messages)

    def close(self) -> None:
        # Fetched but never handed to a thread: back to the queue (Dramatiq leaves them in this
        # worker's ack set, where only a lifeline timeout would find them).
        leftover, self.message_cache = self.message_cache, []
        try:
            if leftover:
                self.requeue(leftover)
        finally:
            self.broker.acks.flush()
            super().close()


class TaskhubRedisBroker(RedisBroker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acks = SharedRoundTrips(
            "taskhub-acks",
            lambda: self.client,
            scripts=[_ACK_MANY_SCRIPT],
            send_notes=self._queue_acks,
        )
        self._ack_sha = self.client.register_script(_ACK_MANY_SCRIPT).sha
        self._enqueue_many = self.client.register_script(_ENQUEUE_MANY_SCRIPT)
        self._drop_acks = self.client.register_script(_DROP_ACKS_SCRIPT)

    @property
    def consumer_class(self):
        return NudgedRedisConsumer

    #: Called by a consumer thread with each batch it fetched, before any of it is handed to a
    #: worker thread, and with messages it hands back to the broker unprocessed. Set by the
    #: worker runtime (taskhub.engine.worker claims attempts at fetch).
    on_fetched: Callable[[list[MessageProxy]], None] | None = None
    on_requeued: Callable[[list[MessageProxy]], None] | None = None

    def emit_fetched(self, messages: list[MessageProxy]) -> None:
        if self.on_fetched is not None:
            self.on_fetched(messages)

    def emit_requeued(self, messages: list[MessageProxy]) -> None:
        if self.on_requeued is not None:
            self.on_requeued(messages)

    def _queue_acks(self, pipe: Any, acks: dict[Hashable, list[str]]) -> None:
        heartbeats = f"{self.namespace}:__heartbeats__"
        now = int(time.time() * 1000)
        for queue_name, ids in acks.items():
            keys = [
                heartbeats,
                f"{self.namespace}:__acks__.{self.broker_id}.{queue_name}",
                f"{self.namespace}:{queue_name}.msgs",
            ]
            pipe.evalsha(self._ack_sha, len(keys), *keys, now, self.broker_id, *ids)

    def enqueue_many(self, messages: list[Message], nudges: int) -> None:
        """Put ``messages`` (one queue's, in consumption order) on their queue with one script
        call, and push up to ``nudges`` wake-up tokens for its idle consumers."""
        if not messages:
            return
        queue_name = messages[0].queue_name
        args: list[Any] = [min(nudges, len(messages))]
        for message in messages:
            message.options["redis_message_id"] = message.message_id
            args += (message.message_id, message.encode())
        keys = [
            f"{self.namespace}:{queue_name}",
            f"{self.namespace}:{queue_name}.msgs",
            notify_key(self.namespace, queue_name),
        ]
        self._enqueue_many(keys=keys, args=args)

    def waiting_attempts(self, queue_name: str) -> set[tuple[str, int]]:
        """The (task, attempt) of every message waiting in the queue, not yet fetched."""
        ids = self.client.lrange(f"{self.namespace}:{queue_name}", 0, -1)
        waiting = set()
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            for body in self.client.hmget(f"{self.namespace}:{queue_name}.msgs", chunk):
                if body is None:
                    continue
                args = Message.decode(body).args
                if args and isinstance(args[0], dict) and "id" in args[0]:
                    waiting.add((str(args[0]["id"]), int(args[0].get("attempt", 0))))
        return waiting

    def drop_consumer(self, broker_id: str) -> int:
        """Forget a dead consumer: its ack sets and the bodies of the messages they list.
        Returns how many messages it had fetched and not acked."""
        dropped = 0
        # SCAN walks the whole keyspace (claims alone keep one key per attempt for CLAIM_TTL).
        # At Redis's default page of 10 keys that was one round trip per 10 keys while the
        # dispatcher, which runs the lifeline, dispatched nothing; a page of SCAN_PAGE keys is
        # still a short step for Redis.
        pattern = f"{self.namespace}:__acks__.{broker_id}.*"
        for name in self.client.scan_iter(match=pattern, count=SCAN_PAGE):
            queue_name = name.decode().rsplit(f"__acks__.{broker_id}.", 1)[1]
            bodies = f"{self.namespace}:{queue_name}.msgs"
            dropped += self._drop_acks(keys=[name, bodies])
        self.client.zrem(f"{self.namespace}:__heartbeats__", broker_id)
        return dropped

    def declare_queue(self, queue_name: str) -> None:
        if queue_name not in self.queues:
            self.emit_before("declare_queue", queue_name)
            self.queues.add(queue_name)
            self.emit_after("declare_queue", queue_name)
