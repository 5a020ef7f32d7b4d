"""Commit budget: PostgreSQL commits per task at saturation — the change in
pg_stat_database.xact_commit over the throughput run (from starting the workers to after they
stopped, less the harness's own polls) ÷ tasks. Target ≤ 0.5."""

from __future__ import annotations

from . import throughput
from .core import Context, Row, Skip, at_most, is_postgres

NAME = "commits"
TARGET = 0.5


def run(ctx: Context) -> list[Row]:
    if not is_postgres():
        raise Skip("needs PostgreSQL (pg_stat_database)")
    result = throughput.taskhub_run(ctx)
    note = f"{result.commits} commits / {result.count} tasks (throughput run)"
    return [at_most(NAME, "commits per task", round(result.commits_per_task, 3), TARGET, note=note)]
