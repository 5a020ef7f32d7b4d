"""``make bench`` / ``python -m bench.run``: run the measures, print one table, write
``bench/results/<date>.json`` and ``<date>.png``, exit 1 if a target is missed.

Runs against the current settings (DATABASE_URL, REDIS_URL, TASKHUB_*); unset, they default to
PostgreSQL ``taskhub_bench`` on 127.0.0.1 (created and migrated if missing) and the Redis on
127.0.0.1:6379 with a fresh key prefix.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import time
import traceback

from . import env

#: measure name → module (each has ``run(ctx) -> list[Row]``), in the order they run.
MEASURES = {
    "throughput": "bench.throughput",
    "commits": "bench.commits",
    "enqueue": "bench.enqueue",
    "latency": "bench.latency",
    "memory": "bench.memory",
    "io": "bench.io_bound",
    "table_growth": "bench.table_growth",
    "api": "bench.api",
    "scale": "bench.scale",
    "search": "bench.search",
    "events": "bench.events",
    "workflow": "bench.workflow",
    "faults": "bench.faults",
    "chaos": "bench.chaos",
}
#: Measures that disturb the stack on purpose: only with --faults (or named in --only).
FAULT_MEASURES = ("faults", "chaos")
logger = logging.getLogger("bench")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="every count 10× smaller (smoke test)")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only these measures (repeat or comma-separate): {', '.join(MEASURES)}",
    )
    p.add_argument("--skip", action="append", default=[], metavar="NAME", help="leave these out")
    p.add_argument("--faults", action="store_true", help="also run the fault drills")
    p.add_argument(
        "--drills",
        default="kill9,flushall,pg_restart,schedulers",
        help="which fault drills (comma-separated); pg_restart stops the local PostgreSQL 30 s",
    )
    p.add_argument(
        "--chaos-seconds",
        type=float,
        default=None,
        metavar="S",
        help="length of the chaos run's load (default 600; 120 with --quick)",
    )
    p.add_argument(
        "--chaos-seed", type=int, default=None, help="the chaos run's seed (default: random)"
    )
    p.add_argument(
        "--chaos-leave-out",
        type=_chaos_leave_out,
        default=frozenset(),
        metavar="NAMES",
        help="kinds of work or faults the chaos run leaves out (comma-separated), e.g. nul or "
        "redis-stall: to see what the rest finds while one defect is being fixed",
    )
    p.add_argument(
        "--chaos-shape",
        choices=("dispatcher", "workers"),
        default="dispatcher",
        help="the chaos run's stack: worker units and a dispatcher process (default), or "
        "workers: rundramatiq alone, the units dispatching (embedded dispatcher); there the "
        "dispatcher's SIGKILL becomes leader-sigkill (the worker process leading is killed)",
    )
    p.add_argument(
        "--chaos-keep-db",
        action="store_true",
        help="keep the chaos run's database (<name>_chaos) to look at its rows afterwards",
    )
    p.add_argument("--processes", type=int, default=2, help="worker processes, both sides")
    p.add_argument("--threads", type=int, default=8, help="threads per worker process")
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the taskhub workers and dispatcher during the throughput run",
    )
    p.add_argument(
        "--keep-filler",
        action="store_true",
        help="keep the 1M filler rows for the next run (scale iterations)",
    )
    p.add_argument("--no-chart", action="store_true")
    return p.parse_args(argv)


def _chaos_leave_out(text: str) -> frozenset[str]:
    from .chaos import LEAVE_OUT_CHOICES

    names = frozenset(n.strip() for n in text.split(",") if n.strip())
    unknown = names - set(LEAVE_OUT_CHOICES)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown: {', '.join(sorted(unknown))} (choose from {', '.join(LEAVE_OUT_CHOICES)})"
        )
    return names


def selected(args: argparse.Namespace) -> list[str]:
    only = {n.strip() for item in args.only for n in item.split(",") if n.strip()}
    skip = {n.strip() for item in args.skip for n in item.split(",") if n.strip()}
    unknown = (only | skip) - set(MEASURES)
    if unknown:
        raise SystemExit(f"unknown measure(s): {', '.join(sorted(unknown))}")
    names = [n for n in MEASURES if (n in only if only else n not in FAULT_MEASURES or args.faults)]
    return [n for n in names if n not in skip]


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through every finally: processes get stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = selected(args)
    env.apply_defaults()
    env.ensure_database()
    env.setup_django()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logger.setLevel(logging.INFO)
    signal.signal(signal.SIGTERM, _terminate)

    from pathlib import Path

    from . import core, faults, filler, report

    ctx = core.Context(
        quick=args.quick,
        processes=args.processes,
        threads=args.threads,
        keep_filler=args.keep_filler,
        profile_dir=(env.ROOT / "var" / "bench-profiles") if args.profile else None,
    )
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "args": vars(args),
        "measures": names,
        "machine": env.machine(),
        "environment": environment(),
    }
    _banner(meta, args)
    core.prepare_database()
    rows: list[core.Row] = []
    started = time.monotonic()
    try:
        for name in names:
            sys.stderr.write(f"[bench] {name} …\n")
            t0 = time.monotonic()
            try:
                module = importlib.import_module(MEASURES[name])
                if name == "faults":
                    drills = tuple(d.strip() for d in args.drills.split(",") if d.strip())
                    rows += module.run(ctx, drills)
                elif name == "chaos":
                    rows += module.run(
                        ctx,
                        args.chaos_seconds,
                        args.chaos_seed,
                        args.chaos_leave_out,
                        args.chaos_keep_db,
                        args.chaos_shape,
                    )
                else:
                    rows += module.run(ctx)
            except core.Skip as exc:
                rows.append(core.info(name, "—", None, note=f"skipped: {exc}"))
            except Exception as exc:
                traceback.print_exc()
                rows.append(
                    core.Row(
                        name, "error", None, ok=False, note=f"{type(exc).__name__}: {exc}"[:300]
                    )
                )
            finally:
                _tidy(ctx)
            sys.stderr.write(f"[bench] {name} done in {time.monotonic() - t0:.0f}s\n")
    finally:
        from .procs import stop_all

        stop_all()
        faults.ensure_postgres_running()
        if ctx.cache.get("filler") and not ctx.keep_filler:
            sys.stderr.write("[bench] removing the filler rows …\n")
            filler.drop()
        _forget_redis_keys(ctx)
    meta["elapsed_s"] = round(time.monotonic() - started)
    meta["machine"]["load_average_end"] = os.getloadavg()

    print(report.table(rows))
    stem = time.strftime("%Y-%m-%d") + ("-quick" if args.quick else "")
    report.RESULTS.mkdir(exist_ok=True)
    json_path = report.RESULTS / f"{stem}.json"
    report.write_json(json_path, ctx, rows, meta)
    outputs = [json_path]
    if not args.no_chart:
        png = report.RESULTS / f"{stem}.png"
        cpus = meta["machine"].get("cpus")
        title = f"taskhub bench {meta['date']} — {ctx.shape} workers, {cpus} CPUs"
        title += " (quick: noisy smoke run)" if args.quick else ""
        report.write_chart(png, ctx, rows, title)
        outputs.append(png)
    print("\nwrote " + ", ".join(str(Path(p).relative_to(env.ROOT)) for p in outputs))
    missed = [r for r in rows if r.ok is False]
    if missed:
        print(
            f"{len(missed)} target(s) missed: "
            + "; ".join(f"{r.measure} {r.metric}" for r in missed)
        )
        return 1
    return 0


def environment() -> dict:
    from django.db import connection

    from taskhub.engine.broker import configured_redis_url, get_redis

    data = {
        "database": connection.vendor,
        "database_name": str(connection.settings_dict["NAME"]),
        "redis_url": configured_redis_url(),
        "key_prefix": os.environ["TASKHUB_KEY_PREFIX"],
    }
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            data["postgresql"] = cursor.fetchone()[0]
            cursor.execute("SHOW synchronous_commit")
            data["synchronous_commit"] = cursor.fetchone()[0]
    try:
        data["redis"] = get_redis().info("server").get("redis_version")
    except Exception as exc:
        data["redis"] = f"unreachable: {exc}"
    return data


def _banner(meta: dict, args: argparse.Namespace) -> None:
    m, e = meta["machine"], meta["environment"]
    load = m["load_average"][0]
    sys.stderr.write(
        f"[bench] {', '.join(meta['measures'])} on {e['database']} {e.get('database_name')} "
        f"(PostgreSQL {e.get('postgresql', '-')}, "
        f"synchronous_commit={e.get('synchronous_commit', '-')}), "
        f"Redis {e.get('redis')}, prefix {e['key_prefix']}; {m['cpus']} CPUs, load {load:.1f}"
        f"{' (quick)' if args.quick else ''}\n"
    )
    if load > (m["cpus"] or 1):
        sys.stderr.write("[bench] the machine is busy: numbers from this run are noisy\n")


def _tidy(ctx) -> None:
    """Remove whatever batch a failed measure left behind."""
    from .core import TAG_PREFIX, delete_tagged

    try:
        delete_tagged(f"{TAG_PREFIX}{ctx.run_id}-%", like=True)
    except Exception as exc:
        logger.warning("could not tidy up: %s", exc)


def _forget_redis_keys(ctx) -> None:
    """Delete this run's keys (never FLUSHALL: the Redis may be shared)."""
    try:
        from taskhub.engine.broker import dramatiq_namespace, get_redis, key

        client = get_redis()
        for pattern in (key("*"), f"{dramatiq_namespace()}:*", f"{ctx.bare_namespace}:*"):
            for name in client.scan_iter(match=pattern, count=1000):
                client.delete(name)
    except Exception as exc:
        logger.warning("could not remove the run's Redis keys: %s", exc)


if __name__ == "__main__":
    sys.exit(main())
