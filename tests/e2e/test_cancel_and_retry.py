"""A cancel ends what it covers and nothing after it: a cancelled task that is retried runs
again, and a running task asked to stop ends cancelled even if its handler then fails or times
out (never ``retrying``, which would send round a task the operator cancelled)."""

import pytest

from taskhub import schedule
from taskhub.console import services
from taskhub.engine.broker import get_redis, key
from taskhub.models import Task
from tests.support import wait_status

pytestmark = [pytest.mark.e2e]


def started(label):
    return [v.decode() for v in get_redis().lrange(key("test", label, "order"), 0, -1)]


def test_a_cancelled_task_that_is_retried_runs_again(e2e):
    task = schedule("test.sleep", {"label": "cancel-then-retry"}, delay=1)
    services.cancel_task(task.id, actor="test")

    services.retry_task(task.id, actor="test")

    done = wait_status(task.id, "completed", timeout=15)
    assert started("cancel-then-retry") == [str(task.id)]
    assert done.result["attempt"] == done.attempt == 1


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("test.sleep_then_fail", {"seconds": 1.5, "label": "cancel-then-fail"}),
        ("test.slow_timeout", {}),  # a 1 s timeout, a 5 s handler
    ],
)
def test_a_running_task_asked_to_stop_ends_cancelled_when_its_handler_then_fails(
    e2e, name, payload
):
    task = schedule(name, payload)
    wait_status(task.id, "running", timeout=10)

    services.cancel_task(task.id, actor="test")

    cancelled = wait_status(task.id, ("cancelled", "completed", "failed"), timeout=15)
    assert cancelled.status == "cancelled"
    assert cancelled.attempt == 1  # it never went round again
    last = cancelled.events.order_by("id").last()
    assert (last.kind, last.attempt, last.data["reason"]) == ("cancelled", 1, "cancel requested")
    assert last.data["error"]  # what the handler did is kept
    assert not Task.objects.filter(id=task.id, status__in=("queued", "running")).exists()
