"""Dramatiq's Redis broker, adapted to how taskhub uses it.

- No delay queues: the task rows hold every schedule and the dispatcher releases work when it
  is due, so Dramatiq's ``.DQ`` queues would only add idle polling to every worker.
- Consumers wait for a nudge instead of sleeping blind: Dramatiq's Redis consumer polls an
  empty queue with a growing sleep (up to its idle timeout), which adds that sleep to the start
  of every task arriving on a quiet queue. The dispatcher pushes a token on
  ``<namespace>:<queue>.notify`` with each batch it sends, and an idle consumer BLPOPs it.
"""

from __future__ import annotations

import time

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message


def notify_key(namespace: str, queue: str) -> str:
    return f"{namespace}:{queue}.notify"


class NudgedRedisConsumer(_RedisConsumer):
    """Dramatiq's consumer with the idle sleep replaced by a BLPOP on the queue's nudge list."""

    def __next__(self):
        try:
            while True:
                if self.message_cache:
                    data = self.message_cache.pop(0)
                    if data is None:
                        continue
                    self.misses = 0
                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
                if self.outstanding_message_count >= self.prefetch:
                    # Every thread is busy: no point asking Redis; look again shortly.
                    self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=20)
                    time.sleep(backoff_ms / 1000)
                    return None
                wanted = self.prefetch - self.outstanding_message_count
                self.message_cache = self.broker.do_fetch(self.queue_name, wanted)
                if not self.message_cache:
                    key = notify_key(self.broker.namespace, self.queue_name)
                    self.broker.client.blpop([key], timeout=max(0.01, self.timeout / 1000))
                    return None
        except redis.ConnectionError as e:
            raise ConnectionClosed(e) from None


class TaskhubRedisBroker(RedisBroker):
    @property
    def consumer_class(self):
        return NudgedRedisConsumer

    def declare_queue(self, queue_name: str) -> None:
        if queue_name not in self.queues:
            self.emit_before("declare_queue", queue_name)
            self.queues.add(queue_name)
            self.emit_after("declare_queue", queue_name)
