"""Throughput: 20,000 no-op tasks through taskhub, fully tracked (rundramatiq + dispatcher), vs
the same count through a bare Dramatiq actor — same Redis, same processes × threads; and again
through `rundramatiq` alone (the workers dispatch, no dispatcher process).
Target: taskhub ≥ 0.75 × bare, in both shapes."""

from __future__ import annotations

from .core import Context, Row, at_least, info, run_bare, run_taskhub

NAME = "throughput"
COUNT = 20_000
TARGET = 0.75


def taskhub_run(ctx: Context):
    """The plain taskhub run, shared with the commit-budget measure within one invocation."""
    if "throughput.taskhub" not in ctx.cache:
        ctx.cache["throughput.taskhub"] = run_taskhub(ctx, NAME, ctx.n(COUNT))
    return ctx.cache["throughput.taskhub"]


def run(ctx: Context) -> list[Row]:
    count = ctx.n(COUNT)
    bare = run_bare(ctx, NAME, count)
    tracked = taskhub_run(ctx)
    # The shape of a host that deploys `rundramatiq` alone: no dispatcher process, the worker
    # processes dispatch (one leads; taskhub.engine.leadership).
    embedded = run_taskhub(ctx, f"{NAME}-embedded", count, embedded=True)
    ctx.series["throughput: bare"] = bare.series
    ctx.series["throughput: taskhub"] = tracked.series
    ctx.series["throughput: taskhub, workers dispatch"] = embedded.series
    ctx.details[NAME] = {
        "bare": bare.summary(),
        "taskhub": tracked.summary(),
        "taskhub_embedded": embedded.summary(),
    }
    shape = f"{count} no-op, {ctx.shape}"
    rows = [
        info(NAME, "bare Dramatiq", round(bare.rate), "tasks/s", note=shape),
        info(NAME, "taskhub", round(tracked.rate), "tasks/s", note=f"{shape} + dispatcher"),
        at_least(NAME, "taskhub / bare", round(tracked.rate / bare.rate, 3), TARGET),
        info(NAME, "taskhub, workers dispatch", round(embedded.rate), "tasks/s", note=shape),
        at_least(NAME, "workers dispatch / bare", round(embedded.rate / bare.rate, 3), TARGET),
    ]
    for side, result in (("taskhub", tracked), ("taskhub, workers dispatch", embedded)):
        if result.completed != count:
            rows.append(
                Row(
                    NAME,
                    f"{side} completed",
                    result.completed,
                    "tasks",
                    f"= {count}",
                    False,
                    note=str(result.statuses),
                )
            )
    return rows
