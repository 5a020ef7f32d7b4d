"""Search: with 1,000,000 task rows made for searching, p50 / p99 of ``GET /api/tasks?q=…`` under
uvicorn for a fixed set of searches (each qualifier alone, combined, a bare word, one that finds
nothing). Target p50 ≤ 300 ms for each. PostgreSQL only: the measure builds the search indexes
(``manage.py taskhub search-indexes``, taskhub.console.search_indexes) after the fill, and drops
those it built when it ends, so the measures after it write to the table as before.

The rows (one ``INSERT … SELECT`` over ``generate_series``, seeded, marked ``worker_id =
'bench-search'`` and deleted at the end): finished tasks over the last 30 days — 88 % completed,
9 % failed, 3 % cancelled — of 40 task names in 6 queues; payloads ``{"user_id", "to", "order":
{"id", "currency", "amount"}}`` for 50,000 users, one in ten of them holding the user id as a
string; the failed ones carry one of six errors (a sixth of them a timeout), most with a number
of their own; half the rows have a user id column.

What each search measures is the API's whole answer: parsing, the query (COUNT-free cursor page
of 50, newest first) and serialising the page. Also measured: the admin's task list searched
(its page and its count, capped at 10,001), and how long ``GET /api/tasks/export`` takes to
stream every task one search finds as CSV (for information).
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlencode

from django.db import connection, transaction

from taskhub.console.search_indexes import create_search_indexes, drop_search_indexes

from . import web
from .core import Context, Row, Skip, at_most, info, is_postgres, task_table

logger = logging.getLogger("bench")
NAME = "search"
ROWS = 1_000_000
SAMPLES = 20
TARGET_MS = 300
ADMIN_SEARCH = "error:timeout"
EXPORT_SEARCH = "error:timeout"
MARK = "bench-search"
CHUNK = 250_000

#: (label, q): the same searches every run; the known ids and numbers exist in every fill.
SEARCHES = [
    ("payload number or string", "payload.user_id:4242"),
    ("nested payload, 1 row", "payload.order.id:ord-123457"),
    ("nested payload, 25 % of rows", "payload.order.currency:CHF"),
    ("error contains, 1.5 %", "error:timeout"),
    ("error contains, 1 row", "error:ACC-654330"),
    ("name contains, 12.5 %", "name:emails"),
    ("status + queue + error", "status:failed queue:email error:timeout"),
    ("four qualifiers", "status:cancelled queue:email name:kyc error:cancelled"),
    ("bare word", "unreachable"),
    ("id prefix", "id:6f0c"),
    ("finds nothing", "nosuchthing"),
]

_FILL = """
INSERT INTO {table} (
    id, name, queue, status, payload, result, priority, attempt, max_attempts, timeout,
    scheduled_at, queued_at, started_at, completed_at, duration, error, traceback, progress,
    correlation_id, user_id, dedup_key, worker_id, cancel_requested, created_at, updated_at,
    step_key, step_kind, trigger_rule, allow_failure, deps_remaining, compensation,
    compensate_failed
)
SELECT
    gen_random_uuid(),
    (ARRAY['emails', 'webhooks', 'payments', 'kyc', 'images', 'notifications', 'sync',
           'http'])[1 + mod((r.kind * 8)::int, 8)]
        || '.' || (ARRAY['send', 'deliver', 'settle', 'check', 'resize'])[1 + mod(i, 5)],
    (ARRAY['default', 'email', 'webhooks', 'notifications', 'analytics',
           'image-processing'])[1 + mod((r.lane * 6)::int, 6)],
    r.status,
    jsonb_build_object(
        'user_id', CASE WHEN r.text_id < 0.1 THEN to_jsonb(r.user_no::text)
                        ELSE to_jsonb(r.user_no) END,
        'to', 'user' || r.user_no || '@example.com',
        'order', jsonb_build_object(
            'id', 'ord-' || i,
            'currency', (ARRAY['EUR', 'USD', 'GBP', 'CHF'])[1 + mod(i, 4)],
            'amount', mod(i, 100000) / 100.0
        )
    ),
    CASE WHEN r.status = 'completed' THEN '{{"ok": true}}'::jsonb END,
    0,
    CASE WHEN r.status = 'failed' THEN 5 ELSE 1 END,
    5,
    300.0,
    r.created, r.created, r.created + interval '20 ms', r.created + interval '220 ms', 0.2,
    CASE r.status
        WHEN 'failed' THEN (ARRAY[
            'TimeoutError: read timed out after 30 s calling provider ' || mod(i, 17),
            'ConnectionError: provider unreachable (connect to 10.0.' || mod(i, 250) || '.7:443)',
            'HTTPError: 502 Bad Gateway from webhook endpoint ' || mod(i, 900),
            'ValueError: invalid account number ACC-' || i,
            'PermanentError: address cannot exist: user' || r.user_no || '@example.invalid',
            'KeyError: currency missing in order ord-' || i
        ])[1 + mod((r.error_kind * 6)::int, 6)]
        WHEN 'cancelled' THEN 'cancelled while running'
        ELSE ''
    END,
    '',
    100,
    'order-' || i,
    CASE WHEN mod(i, 2) = 0 THEN 'u' || r.user_no ELSE '' END,
    NULL,
    %(mark)s,
    false,
    r.created,
    r.created + interval '220 ms',
    '', '', '', false, 0, '', false
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i,
LATERAL (
    SELECT
        CASE WHEN roll < 0.88 THEN 'completed' WHEN roll < 0.97 THEN 'failed'
             ELSE 'cancelled' END AS status,
        now() - created_back * interval '30 days' AS created,
        user_pick AS user_no, kind, lane, text_id, error_kind
    FROM (
        SELECT random() + 0 * i AS roll, random() AS created_back,
               (random() * 50000)::int AS user_pick, random() AS kind, random() AS lane,
               random() AS text_id, random() AS error_kind
    ) AS draws
) AS r
"""


def fill(count: int) -> int:
    """Insert ``count`` search rows (seeded: the same rows every run, but their ids)."""
    started = time.monotonic()
    table = task_table()
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        for first in range(1, count + 1, CHUNK):
            last = min(count, first + CHUNK - 1)
            with transaction.atomic():
                cursor.execute(
                    _FILL.format(table=table), {"mark": MARK, "first": first, "last": last}
                )
            logger.info("search: %d/%d rows", last, count)
        cursor.execute(f"VACUUM ANALYZE {table}")
    logger.info("search: %d rows in %.0fs", count, time.monotonic() - started)
    return count


def drop() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {task_table()} WHERE worker_id = %s", [MARK])
        deleted = cursor.rowcount
        cursor.execute(f"VACUUM ANALYZE {task_table()}")
    return deleted


def run(ctx: Context) -> list[Row]:
    if not is_postgres():
        raise Skip("needs PostgreSQL (its search indexes)")
    rows_wanted = ctx.n(ROWS)
    samples_wanted = max(5, ctx.n(SAMPLES))
    results: list[Row] = []
    details: dict = {}
    site = web.start()
    built: list[str] = []
    try:
        fill(rows_wanted)
        started = time.perf_counter()
        built = create_search_indexes()
        build_s = time.perf_counter() - started
        with site.client() as client:
            for label, q in SEARCHES:
                path = "/api/tasks?" + urlencode({"q": q})
                samples = web.timed_gets(client, path, samples_wanted)
                found = len(client.get(path).json()["results"])
                results.append(_row(details, label, q, samples, f"{found} on page 1"))
            export = _timed_export(client, EXPORT_SEARCH)
        with site.client(admin=True) as client:
            path = "/admin/taskhub/task/?" + urlencode({"q": ADMIN_SEARCH})
            samples = web.timed_gets(client, path, samples_wanted)
            results.append(_row(details, "admin task list searched", ADMIN_SEARCH, samples, ""))
        slowest = max(details.values(), key=lambda d: d["p50"])
        results.append(info(NAME, "slowest p50", round(slowest["p50"], 1), "ms", note=slowest["q"]))
        results.append(
            info(
                NAME,
                f"export CSV: {EXPORT_SEARCH}",
                round(export["seconds"], 2),
                "s",
                note=f"{export['rows']:,} rows, {export['rows'] / export['seconds']:,.0f} rows/s",
            )
        )
        results.append(
            info(NAME, "search indexes built", round(build_s, 1), "s", note=", ".join(built))
        )
        details["export"] = export
        ctx.details[NAME] = details
    finally:
        site.stop()
        if built:
            drop_search_indexes()
        drop()
    return results


def _row(details: dict, label: str, q: str, samples: list[float], note: str) -> Row:
    stats = web.summary(samples)
    details[label] = {"q": q, **stats}
    return at_most(
        NAME,
        f"{label}: {q}",
        round(stats["p50"], 1),
        TARGET_MS,
        "ms",
        note=", ".join(filter(None, [f"p99 {stats['p99']:.0f} ms", note])),
    )


def _timed_export(client, q: str) -> dict:
    started = time.perf_counter()
    lines = 0
    with client.stream("GET", "/api/tasks/export?" + urlencode({"q": q, "format": "csv"})) as r:
        if r.status_code != 200:
            raise RuntimeError(f"GET /api/tasks/export answered {r.status_code}")
        for chunk in r.iter_bytes():
            lines += chunk.count(b"\n")
    # Lines, less the header: a cell with a line break would count twice (these have none).
    return {"q": q, "rows": lines - 1, "seconds": time.perf_counter() - started}
