"""What the workflow tests look at: run states, step rows, and what handlers recorded in Redis."""

from __future__ import annotations

from taskhub.engine.broker import get_redis, key
from taskhub.models import StepEdge, Task, WorkflowRun
from tests.support import wait_for


def recorded(label: str = "runs") -> list[str]:
    return [v.decode() for v in get_redis().lrange(key("test", "wf", label), 0, -1)]


def clear_recorded(*labels: str) -> None:
    get_redis().delete(*[key("test", "wf", label) for label in labels])


def wait_run(run_id, statuses, timeout: float = 60) -> WorkflowRun:
    wanted = (statuses,) if isinstance(statuses, str) else tuple(statuses)

    def check():
        run = WorkflowRun.objects.get(id=run_id)
        return run if run.status in wanted else None

    try:
        return wait_for(check, timeout=timeout, interval=0.1, message=f"run to be {wanted}")
    except AssertionError:
        run = WorkflowRun.objects.get(id=run_id)
        raise AssertionError(
            f"run is {run.status} ({run.error}); steps: {statuses_of(run)}"
        ) from None


def statuses_of(run) -> dict[str, str]:
    return dict(Task.objects.filter(workflow_run=run).values_list("step_key", "status"))


def step(run, key_: str) -> Task:
    return Task.objects.get(workflow_run=run, step_key=key_)


def assert_every_edge_resolved_once(run) -> None:
    """Each edge resolved, and each dependent's count consumed exactly: none left over, none
    below zero (a double resolution would drive it negative)."""
    assert not StepEdge.objects.filter(run=run, resolved_at__isnull=True).exists()
    assert not Task.objects.filter(workflow_run=run, deps_remaining__lt=0).exists()
    assert not Task.objects.filter(workflow_run=run, deps_remaining__gt=0).exists()
