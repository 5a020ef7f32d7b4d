"""Throughput: 20,000 no-op tasks through taskhub, fully tracked (rundramatiq + dispatcher), vs
the same count through a bare Dramatiq actor — same Redis, same processes × threads.
Target: taskhub ≥ 0.75 × bare."""

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
    ctx.series["throughput: bare"] = bare.series
    ctx.series["throughput: taskhub"] = tracked.series
    ctx.details[NAME] = {"bare": bare.summary(), "taskhub": tracked.summary()}
    shape = f"{count} no-op, {ctx.shape}"
    rows = [
        info(NAME, "bare Dramatiq", round(bare.rate), "tasks/s", note=shape),
        info(NAME, "taskhub", round(tracked.rate), "tasks/s", note=shape),
        at_least(NAME, "taskhub / bare", round(tracked.rate / bare.rate, 3), TARGET),
    ]
    if tracked.completed != count:
        rows.append(
            Row(
                NAME,
                "taskhub completed",
                tracked.completed,
                "tasks",
                f"= {count}",
                False,
                note=str(tracked.statuses),
            )
        )
    return rows
