"""Workflow: a 1,000-step fan-out through the coordinator, and what the coordinator costs per
step. No target of its own (issue 10 asks for it to complete, with the cost reported).

Two sides, in the same invocation, each with its own freshly started stack (rundramatiq
ctx.processes × ctx.threads + one dispatcher), started and ready before the clock runs:

* ``plain``: 1,000 ``bench.value`` no-op tasks scheduled with ``schedule_many`` — timed from
  the call to the last completion;
* ``workflow``: one run of root → fan-out of the same 1,000 tasks → fan-in (``bench.sum`` adds
  their results, read from their rows) — timed from ``start_workflow`` to the run ``succeeded``.

Per step (1,000 plain tasks; 1,002 workflow steps) it reports the wall time, PostgreSQL commits
(Δ ``pg_stat_database.xact_commit``) and row writes (Δ ``tup_inserted + tup_updated +
tup_deleted``), read once the stack is ready and again after it stopped (so they include the
stack's idle polling and shutdown, alike on both sides; the harness's own polls are
subtracted). The coordinator's cost per step is the difference between the sides.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .core import Context, Row, Skip, database_counters, info, is_postgres
from .procs import TaskhubStack

NAME = "workflow"
FAN_OUT = 1_000
POLL = 0.05
TIMEOUT = 600.0


@dataclass
class Side:
    label: str
    steps: int
    wall_s: float = 0.0
    commits: int = 0
    writes: int = 0
    polls: int = 0
    status: str = ""
    total: dict = field(default_factory=dict)

    def per_step(self, value: float) -> float:
        return value / max(self.steps, 1)

    def summary(self) -> dict:
        return {
            **self.__dict__,
            "steps_per_s": self.steps / self.wall_s if self.wall_s else None,
            "commits_per_step": self.per_step(self.commits),
            "writes_per_step": self.per_step(self.writes),
        }


def _plain(count: int, tag: str, side: Side) -> None:
    from taskhub import schedule_many
    from taskhub.models import Task

    schedule_many("bench.value", [{"value": 1}] * count, correlation_id=tag)
    done = Task.objects.filter(correlation_id=tag, status="completed")
    _poll(lambda: done.count() >= count, side)
    side.status = "completed" if done.count() == count else "incomplete"
    side.polls += 1  # that last count


def _workflow(count: int, tag: str, side: Side) -> None:
    from taskhub import WorkflowBuilder, start_workflow
    from taskhub.models import Task
    from taskhub.workflows.models import WorkflowRun

    wf = WorkflowBuilder("bench.fan_out")
    root = wf.step("root", "bench.value", {"value": 0})
    leaves = wf.fan_out("leaf", "bench.value", [{"value": 1}] * count, after=root)
    wf.fan_in("total", "bench.sum", {"group": "leaf"}, after=leaves)
    run = start_workflow(wf.graph, correlation_id=tag)
    ended = ("succeeded", "failed", "cancelled", "compensated", "compensation_failed")
    _poll(lambda: WorkflowRun.objects.filter(id=run.id, status__in=ended).exists(), side)
    side.status = WorkflowRun.objects.get(id=run.id).status
    side.total = (
        Task.objects.filter(workflow_run_id=run.id, step_key="total")
        .values_list("result", flat=True)
        .first()
        or {}
    )
    side.polls += 2  # the status and the result just read


def _poll(done, side: Side) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not done():
        side.polls += 1
        if time.monotonic() > deadline:
            raise RuntimeError(f"{side.label}: not finished after {TIMEOUT:.0f}s")
        time.sleep(POLL)
    side.polls += 1


def _measure(ctx: Context, side: Side, work) -> Side:
    tag = ctx.tag(f"{NAME}-{side.label}")
    stack = TaskhubStack(ctx.processes, ctx.threads).start()
    try:
        stack.wait_ready()
        # Read once the stack is up (this process's wait_ready polls stay out of the count).
        commits0, writes0 = database_counters()
        t0 = time.monotonic()
        work(side.steps if side.label == "plain" else side.steps - 2, tag, side)
        side.wall_s = time.monotonic() - t0
    finally:
        stack.stop()
    commits1, writes1 = database_counters()
    # Less the harness's own reads (one autocommit statement each) and the first counter read.
    side.commits = commits1 - commits0 - side.polls - 1
    side.writes = writes1 - writes0
    _forget(tag)
    return side


def _forget(tag: str) -> None:
    from taskhub.workflows.models import WorkflowRun

    from .core import delete_tagged

    WorkflowRun.objects.filter(correlation_id=tag).delete()  # steps, edges, events cascade
    delete_tagged(tag)


def run(ctx: Context) -> list[Row]:
    if not is_postgres():
        raise Skip("needs PostgreSQL (pg_stat_database)")
    count = ctx.n(FAN_OUT)
    plain = _measure(ctx, Side("plain", count), _plain)
    flow = _measure(ctx, Side("workflow", count + 2), _workflow)
    ctx.details[NAME] = {"plain": plain.summary(), "workflow": flow.summary()}
    shape = f"root + {count} + fan-in, {ctx.shape}"
    wall_ms = 1000 * (flow.per_step(flow.wall_s) - plain.per_step(plain.wall_s))
    commits = flow.per_step(flow.commits) - plain.per_step(plain.commits)
    writes = flow.per_step(flow.writes) - plain.per_step(plain.writes)
    ok = flow.status == "succeeded" and flow.total.get("sum") == count
    return [
        Row(
            NAME,
            "run status, fan-in sum",
            f"{flow.status}, {flow.total.get('sum')}",
            "",
            f"= succeeded, {count}",
            ok,
            note=f"{flow.wall_s:.1f} s from start",
        ),
        info(NAME, "workflow steps/s", round(flow.steps / flow.wall_s, 1), "steps/s", note=shape),
        info(
            NAME,
            "plain tasks/s",
            round(plain.steps / plain.wall_s, 1),
            "tasks/s",
            note=f"the same {count} no-ops via schedule_many",
        ),
        info(NAME, "workflow / plain wall time", round(flow.wall_s / plain.wall_s, 2), "×"),
        info(
            NAME,
            "coordinator wall per step",
            round(wall_ms, 2),
            "ms",
            note="workflow − plain, per step",
        ),
        info(
            NAME,
            "commits per step",
            round(flow.per_step(flow.commits), 3),
            "",
            note=f"plain {plain.per_step(plain.commits):.3f}; coordinator +{commits:.3f}",
        ),
        info(
            NAME,
            "row writes per step",
            round(flow.per_step(flow.writes), 2),
            "",
            note=f"plain {plain.per_step(plain.writes):.2f}; coordinator +{writes:.2f}",
        ),
    ]
