"""Attempts through real worker and dispatcher processes: an attempt number is never used
twice (a hand-back's task runs next under a new number), and every message a worker drops or
the dispatcher fails to send leaves its row where it runs again (no claim held for hours, no
row queued for nothing). The Redis failures are real: a private Redis whose ACL takes a
process's access to some keys away, then gives it back."""

import signal

import pytest
import redis
from django.db import transaction

from taskhub import schedule, schedule_many
from taskhub.conf import taskhub_settings
from taskhub.engine.broker import broker_url, dramatiq_namespace, get_redis, key
from taskhub.engine.claims import claim_key
from taskhub.models import Task, TaskEvent
from tests.support import override_taskhub, wait_all_finished, wait_for, wait_status

pytestmark = [pytest.mark.e2e]
on_rabbitmq = pytest.mark.skipif(
    broker_url().startswith("amqp"), reason="drills the Redis broker's fetch and send"
)


def runs(label):
    return [v.decode() for v in get_redis().lrange(key("test", label, "order"), 0, -1)]


def started_attempts(task_id):
    events = TaskEvent.objects.filter(task_id=task_id, kind="started").order_by("id")
    return list(events.values_list("attempt", flat=True))


def test_a_handed_back_attempt_is_never_run_again_under_its_number(make_stack):
    """SIGTERM hands back an attempt that outlived the grace period; its thread may still be
    running when the task is sent again, so the next run must be a new attempt."""
    stack = make_stack(processes=1, threads=2)
    first = stack.start_worker(grace_ms=500)
    stack.start_dispatcher()
    stack.wait_for_workers(1)
    task = schedule("test.sleep", {"seconds": 4, "label": "handed-back"}, max_attempts=1)
    wait_status(task.id, "running", timeout=10)

    first.send_signal(signal.SIGTERM)
    first.wait(timeout=30)
    stack.start_worker()

    done = wait_status(task.id, ("completed", "failed"), timeout=30)
    assert done.status == "completed"
    assert started_attempts(task.id) == [1, 2]
    assert done.result["attempt"] == done.attempt == 2
    # The hand-back was not charged: one attempt allowed, and the task still got its run.
    assert done.max_attempts == 2
    recovered = TaskEvent.objects.get(task_id=task.id, kind="recovered", attempt=1)
    assert (recovered.attempt, recovered.data["reason"]) == (
        1,
        "worker shut down before it finished",
    )


def test_a_task_asked_to_stop_whose_worker_is_lost_ends_cancelled(make_stack):
    """The lifeline returns a dead worker's attempts to the queue; one of a task an operator
    asked to stop ends cancelled instead of running again (on the surviving worker)."""
    import os

    from taskhub.console import services
    from taskhub.models import WorkerProcess

    stack = make_stack(processes=1, threads=1)
    stack.start_worker()
    stack.start_worker()
    stack.start_dispatcher()
    stack.wait_for_workers(2)
    task = schedule("test.sleep", {"seconds": 30, "label": "lost-cancel"})
    running = wait_status(task.id, "running", timeout=15)

    os.kill(WorkerProcess.objects.get(id=running.worker_id).pid, signal.SIGKILL)
    services.cancel_task(task.id, actor="test")

    ended = wait_status(task.id, ("cancelled", "completed", "failed", "queued"), timeout=20)
    assert ended.status == "cancelled"
    assert runs("lost-cancel") == [str(task.id)]
    assert ended.events.order_by("id").last().data["reason"] == (
        "worker lost after a cancel was requested"
    )


def _acl(client, user: str, *rules: str) -> None:
    client.execute_command("ACL", "SETUSER", user, *rules)


def _user_url(url: str, user: str) -> str:
    return url.replace("redis://", f"redis://{user}:secret-{user}@", 1)


@on_rabbitmq
def test_a_claim_that_cannot_be_confirmed_hands_the_attempt_back(make_stack, private_redis):
    """A worker claims what it fetches and confirms the claim when the attempt waited for a
    thread. If Redis refuses the confirmation the attempt must not run, and the row must not
    stay queued under this live worker's claim (for CLAIM_TTL, holding a slot of its queue)."""
    admin = redis.Redis.from_url(private_redis)
    prefix = taskhub_settings.KEY_PREFIX
    _acl(admin, "worker", "on", ">secret-worker", "~*", "+@all")
    with override_taskhub(REDIS_URL=private_redis):
        # The workers must not dispatch (embedded=False): the dispatcher process keeps every key.
        workers = make_stack(
            processes=1,
            threads=1,
            dispatcher=False,
            env={"REDIS_URL": _user_url(private_redis, "worker")},
            embedded=False,
        )
        workers.start()
        make_stack(env={"REDIS_URL": private_redis}).start_dispatcher()
        blocker = schedule("test.sleep", {"seconds": 3, "label": "blocker"}, priority="critical")
        waiting = schedule("test.sleep", {"label": "confirmed-late"})
        # One thread: the blocker runs while the other message waits in the worker, claimed.
        wait_for(lambda: runs("blocker"), timeout=20, message="the blocker to start")
        wait_for(
            lambda: admin.exists(claim_key(waiting.id, 1)),
            timeout=10,
            message="the waiting message to be claimed at fetch",
        )

        # Every key but claims and cancel flags (the confirmation reads both).
        _acl(admin, "worker", "resetkeys", f"~{dramatiq_namespace()}*", f"~{prefix}:[^c]*")
        wait_status(blocker.id, "completed", timeout=20)
        wait_for(
            lambda: TaskEvent.objects.filter(task_id=waiting.id, kind="recovered").exists(),
            timeout=10,
            message="the unconfirmed attempt to be handed back",
        )
        _acl(admin, "worker", "~*")

        done = wait_status(waiting.id, ("completed", "failed"), timeout=20)
        assert done.status == "completed"
        assert runs("confirmed-late") == [str(waiting.id)]
        assert 1 not in started_attempts(waiting.id)  # the unconfirmed attempt never ran
        reasons = TaskEvent.objects.filter(task_id=waiting.id, kind="recovered", attempt=1)
        assert reasons.get().data["reason"].startswith("claim failed")


@on_rabbitmq
def test_a_send_refused_for_one_queue_returns_only_that_queues_rows(make_stack, private_redis):
    """The dispatcher sends each queue's messages separately. When one queue's send fails,
    the messages of the others are already out: their rows must stay queued (un-queued, they
    would run as orphans while their rows are sent again)."""
    admin = redis.Redis.from_url(private_redis)
    prefix = taskhub_settings.KEY_PREFIX
    _acl(admin, "dispatcher", "on", ">secret-dispatcher", "~*", "+@all")
    with override_taskhub(REDIS_URL=private_redis):
        # Only the dispatcher process below dispatches (embedded=False): its sends are refused.
        make_stack(
            processes=1,
            threads=4,
            dispatcher=False,
            env={"REDIS_URL": private_redis},
            embedded=False,
        ).start()
        # The dispatcher may not write the "capped" queue's keys (every queue here but it
        # starts with another letter).
        _acl(admin, "dispatcher", "resetkeys", f"~{dramatiq_namespace()}:[^c]*", f"~{prefix}:*")
        make_stack(env={"REDIS_URL": _user_url(private_redis, "dispatcher")}).start_dispatcher()
        # One commit, so one dispatch cycle claims both; higher priority first on the wire:
        # the default queue's batch goes out before the capped one's send fails.
        with transaction.atomic():
            sent = schedule_many(
                "test.sleep", [{"seconds": 0.2, "label": "sent"}] * 3, priority="critical"
            )
            refused = schedule_many("test.sleep_capped", [{"label": "refused"}] * 3, priority="low")
        sent, refused = [t.id for t in sent], [t.id for t in refused]
        wait_for(
            lambda: TaskEvent.objects.filter(task_id__in=refused, kind="recovered").exists(),
            timeout=20,
            message="the refused queue's rows to be returned",
        )
        wait_all_finished(sent, timeout=20)
        _acl(admin, "dispatcher", "~*")
        wait_all_finished(refused, timeout=30)

        assert Task.objects.filter(id__in=sent + refused, status="completed").count() == 6
        # The sent rows were never un-queued: one dispatch, one attempt each.
        assert not TaskEvent.objects.filter(task_id__in=sent, kind="recovered").exists()
        assert list(Task.objects.filter(id__in=sent).values_list("attempt", flat=True)) == [1] * 3
        assert sorted(runs("sent")) == sorted(str(i) for i in sent)
        # The refused ones ran once each, under a later attempt: the un-queued one is retired.
        assert sorted(runs("refused")) == sorted(str(i) for i in refused)
        for task_id in refused:
            assert 1 not in started_attempts(task_id)
