"""The lifeline against the real database and Redis, no worker process: what it re-sends, what
it leaves in Redis, and what it judges from Redis after Redis lost its data."""

import datetime as dt
import os

import pytest
from django.utils import timezone

from taskhub import schedule
from taskhub.conf import taskhub_settings
from taskhub.engine import redis_memory
from taskhub.engine.broker import broker_url, dramatiq_namespace, get_broker, get_redis
from taskhub.engine.dispatcher import Dispatcher
from taskhub.engine.lifeline import Lifeline
from taskhub.engine.redis_transport import TaskhubRedisBroker
from taskhub.models import Task, TaskEvent, WorkerProcess

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not isinstance(get_broker(), TaskhubRedisBroker), reason="Redis broker internals"
    ),
]
QUEUE = "capped"  # test.sleep_capped's; no worker runs in these tests


def dispatched_task() -> Task:
    task = schedule("test.sleep_capped", {})
    Dispatcher().dispatch_once()
    task.refresh_from_db()
    assert task.status == "queued"
    return task


def messages_of(task: Task) -> int:
    broker = get_broker()
    ids = get_redis().lrange(f"{broker.namespace}:{QUEUE}", 0, -1)
    bodies = get_redis().hmget(f"{broker.namespace}:{QUEUE}.msgs", ids) if ids else []
    return sum(1 for b in bodies if b and str(task.id).encode() in b)


def age_queued_at(task: Task) -> None:
    waited = dt.timedelta(seconds=2 * taskhub_settings.REDISPATCH_AFTER)
    Task.objects.filter(id=task.id).update(queued_at=timezone.now() - waited)


@pytest.fixture(autouse=True)
def empty_queue():
    get_broker().flush(QUEUE)
    yield
    get_broker().flush(QUEUE)


def test_a_row_whose_message_still_waits_in_its_queue_is_not_sent_again(redis_kept_its_data):
    task = dispatched_task()

    for _ in range(3):  # three REDISPATCH_AFTER periods with nobody consuming the queue
        age_queued_at(task)
        Lifeline().run_once()

    assert messages_of(task) == 1
    assert not TaskEvent.objects.filter(task_id=task.id, kind="recovered").exists()


def test_a_row_whose_message_is_gone_is_sent_again(redis_kept_its_data):
    task = dispatched_task()
    get_broker().flush(QUEUE)
    age_queued_at(task)

    report = Lifeline().run_once()

    assert report.redispatched == 1
    assert messages_of(task) == 1


def dead_consumer_holding(task: Task) -> tuple[TaskhubRedisBroker, str]:
    """Another consumer fetches the task's message and dies before acking it."""
    consumer = TaskhubRedisBroker(url=broker_url(), namespace=dramatiq_namespace())
    [body] = consumer.do_fetch(QUEUE, 1)
    message_id = consumer_message_id(body)
    long_ago = timezone.now() - dt.timedelta(hours=1)
    WorkerProcess.objects.create(
        id="dead-consumer",
        hostname="elsewhere",
        pid=os.getpid(),
        queues=[QUEUE],
        threads=1,
        broker_id=consumer.broker_id,
        started_at=long_ago,
        last_heartbeat_at=long_ago,
    )
    return consumer, message_id


def consumer_message_id(body: bytes) -> str:
    from dramatiq import Message

    return Message.decode(body).options["redis_message_id"]


def test_a_dead_consumers_unacked_messages_leave_no_body_behind(redis_kept_its_data):
    task = dispatched_task()
    consumer, message_id = dead_consumer_holding(task)
    bodies = f"{dramatiq_namespace()}:{QUEUE}.msgs"
    assert get_redis().hexists(bodies, message_id)

    report = Lifeline().run_once()

    assert report.dead_workers == ["dead-consumer"]
    assert not get_redis().hexists(bodies, message_id)
    assert not get_redis().exists(f"{dramatiq_namespace()}:__acks__.{consumer.broker_id}.{QUEUE}")


def test_a_dead_consumers_ack_sets_are_found_in_few_round_trips_among_many_keys(
    redis_kept_its_data, monkeypatch
):
    # The lifeline runs inside the dispatcher: every round trip of its search is a moment with
    # nothing dispatched. SCAN's default page (10 keys) took one per 10 keys of the keyspace.
    task = dispatched_task()
    consumer, message_id = dead_consumer_holding(task)
    filler = [f"{dramatiq_namespace()}:unit-filler:{i}" for i in range(5000)]
    pipe = get_redis().pipeline(transaction=False)
    for name in filler:
        pipe.set(name, 1, ex=60)
    pipe.execute()
    client = get_broker().client
    scans = []
    real_scan = client.scan

    def counted_scan(*args, **kwargs):
        scans.append(1)
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(client, "scan", counted_scan)
    try:
        keys = client.dbsize()
        report = Lifeline().run_once()
    finally:
        get_redis().delete(*filler)

    assert report.dead_workers == ["dead-consumer"]
    assert not get_redis().hexists(f"{dramatiq_namespace()}:{QUEUE}.msgs", message_id)
    assert 0 < len(scans) <= keys // 200 + 10


def test_an_ack_removes_the_body_even_after_its_ack_set_was_dropped():
    task = dispatched_task()
    consumer, message_id = dead_consumer_holding(task)
    # The lifeline dropped its ack sets (it presumed the consumer dead), then the ack arrives.
    get_redis().delete(f"{dramatiq_namespace()}:__acks__.{consumer.broker_id}.{QUEUE}")

    consumer.acks.note(QUEUE, message_id)
    consumer.acks.flush()

    assert not get_redis().hexists(f"{dramatiq_namespace()}:{QUEUE}.msgs", message_id)


def test_after_redis_lost_its_data_nothing_is_judged_from_it_for_one_lifeline_timeout():
    """A worker whose database heartbeat lapsed has no liveness key right after Redis lost its
    data — nor has it had the chance to write one: it is not presumed dead until Redis has
    kept its data for one LIFELINE_TIMEOUT."""
    task = schedule("test.noop", {})
    quiet = timezone.now() - dt.timedelta(seconds=3 * taskhub_settings.LIFELINE_TIMEOUT)
    WorkerProcess.objects.create(
        id="quiet-worker",
        hostname="elsewhere",
        pid=os.getpid(),
        queues=[],
        threads=1,
        started_at=quiet,
        last_heartbeat_at=quiet,
    )
    Task.objects.filter(id=task.id).update(
        status="running", attempt=1, worker_id="quiet-worker", updated_at=quiet
    )
    get_redis().delete(redis_memory.marker_key())  # what a FLUSHALL or an empty restart leaves

    report = Lifeline().run_once()

    assert not report.dead_workers and not report.lost_attempts
    assert Task.objects.get(id=task.id).status == "running"

    # One LIFELINE_TIMEOUT later, a missing key is evidence again.
    since = float(get_redis().get(redis_memory.marker_key()))
    get_redis().set(redis_memory.marker_key(), f"{since - taskhub_settings.LIFELINE_TIMEOUT:.6f}")
    uptime = get_redis().info("server")["uptime_in_seconds"]
    if uptime < taskhub_settings.LIFELINE_TIMEOUT:
        pytest.skip("this Redis started less than one LIFELINE_TIMEOUT ago")
    report = Lifeline().run_once()

    assert report.dead_workers == ["quiet-worker"] and report.lost_attempts == 1


def test_a_redis_restarted_from_an_older_snapshot_is_watched_afresh():
    """The marker survived (a snapshot restored it), but Redis has been up for less time than
    the marker says: claims and keys written after that snapshot are gone."""
    client = get_redis()
    seconds, micros = client.time()
    uptime = client.info("server")["uptime_in_seconds"]
    client.set(redis_memory.marker_key(), f"{seconds - uptime - 60:.6f}")

    memory = redis_memory.observe()

    assert memory.age < taskhub_settings.LIFELINE_TIMEOUT and not memory.trusted
