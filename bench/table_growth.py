"""Table growth: the throughput run (20,000 no-op tasks) with 1,000,000 finished rows in the
task table (bench.filler: COPY, one event each) vs with none. Target ≥ 0.9 ×."""

from __future__ import annotations

from . import filler
from .core import Context, Row, Skip, at_least, info, is_postgres, run_taskhub

NAME = "table_growth"
COUNT = 20_000
ROWS = 1_000_000


def run(ctx: Context) -> list[Row]:
    if not is_postgres():
        raise Skip("needs PostgreSQL (COPY)")
    count, rows = ctx.n(COUNT), ctx.n(ROWS)
    if filler.filler_count():
        filler.drop()  # the "empty" side must really be empty of finished rows
    empty = run_taskhub(ctx, "growth-empty", count)
    inserted = filler.ensure(rows)
    full = run_taskhub(ctx, "growth-full", count)
    ctx.cache["filler"] = rows
    ctx.series["table growth: empty"] = empty.series
    ctx.series["table growth: 1M rows" if not ctx.quick else "table growth: filled"] = full.series
    ctx.details[NAME] = {"empty": empty.summary(), "full": full.summary(), "inserted": inserted}
    return [
        info(NAME, "empty table", round(empty.rate), "tasks/s", note=f"{count} no-op"),
        info(NAME, f"with {rows:,} rows", round(full.rate), "tasks/s"),
        at_least(NAME, "full / empty", round(full.rate / empty.rate, 3), 0.9),
    ]
