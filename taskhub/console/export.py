"""Exporting a list of tasks as CSV or JSON Lines, streamed: the API's ``GET /api/tasks/export``
and the admin's "Export CSV / JSONL" links.

The rows are read in pages of :data:`PAGE` along ``(created_at, id)``, newest first, each page a
short query of its own: memory stays flat however many rows match, no transaction or
server-side cursor stays open while a slow client reads, and a row written meanwhile is never
sent twice (its created_at puts it before the first page or after the last).

What leaves is what the API shows: payloads with their secrets masked (``redact``), results
with secret-looking keys and URL credentials masked (``mask``), and credentials in error texts'
URLs masked. CSV holds no payload or result, and a text cell that a spreadsheet would read as a
formula (``=``, ``+``, ``-``, ``@``, tab, carriage return first) is prefixed with ``'``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import Q, QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from rest_framework import serializers

from ..definitions.payloads import redact
from ..definitions.registry import all_definitions
from ..safety.masking import mask, mask_urls_in

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
#: The columns of both formats, in order; JSON Lines adds payload and result.
COLUMNS = (
    "id",
    "name",
    "queue",
    "status",
    "attempt",
    "max_attempts",
    "priority",
    "created_at",
    "scheduled_at",
    "queued_at",
    "started_at",
    "completed_at",
    "duration",
    "error",
    "correlation_id",
    "user_id",
)
TIMESTAMPS = ("created_at", "scheduled_at", "queued_at", "started_at", "completed_at")
PAGE = 5000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_datetime = serializers.DateTimeField()  # the API's format for times


def export_response(tasks: QuerySet, file_format: str) -> StreamingHttpResponse:
    """The tasks as a download (``file_format``: one of :data:`FORMATS`)."""
    lines = _csv_lines(tasks) if file_format == "csv" else _json_lines(tasks)
    response = ExportResponse(lines, content_type=FORMATS[file_format])
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="tasks-{stamp}.{file_format}"'
    response["Cache-Control"] = "no-store"
    return response


class ExportResponse(StreamingHttpResponse):
    """Streams a synchronous iterator under ASGI too, a piece at a time. (Django's own would
    collect the whole body in memory first: a synchronous iterator under ASGI is read with
    ``list()``.) Each piece is read in the request's thread for database work."""

    async def __aiter__(self):
        pieces = iter(self.streaming_content)
        step = sync_to_async(next, thread_sensitive=True)
        while (piece := await step(pieces, None)) is not None:
            yield piece


def pages(tasks: QuerySet, fields: tuple[str, ...]) -> Iterator[list[dict[str, Any]]]:
    """The rows' ``fields`` (``values()``, which must hold created_at and id), newest first,
    :data:`PAGE` at a time."""
    ordered = tasks.order_by("-created_at", "-id").values(*fields)
    after = None
    while True:
        page = ordered
        if after is not None:
            created, task_id = after
            # (created_at, id) < (created, task_id), written so that created_at bounds an
            # index range on its own.
            page = page.filter(
                Q(created_at__lt=created) | Q(id__lt=task_id), created_at__lte=created
            )
        rows = list(page[:PAGE])
        if rows:
            yield rows
        if len(rows) < PAGE:
            return
        after = (rows[-1]["created_at"], rows[-1]["id"])


def _cells(row: dict[str, Any]) -> dict[str, Any]:
    """A row's columns as the API shows them (times, ids as text; error URLs masked)."""
    cells = {name: row[name] for name in COLUMNS}
    cells["id"] = str(row["id"])
    for name in TIMESTAMPS:
        cells[name] = _datetime.to_representation(row[name]) if row[name] else None
    cells["error"] = mask_urls_in(row["error"])
    return cells


class _Line:
    """What csv.writer writes to: it hands each line back instead of storing it."""

    def write(self, line: str) -> str:
        return line


def safe_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, defused with a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_lines(tasks: QuerySet) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(COLUMNS)
    for page in pages(tasks, COLUMNS):
        yield "".join(
            writer.writerow([safe_cell(cell) for cell in _cells(row).values()]) for row in page
        )


def _json_lines(tasks: QuerySet) -> Iterator[str]:
    definitions = all_definitions()
    for page in pages(tasks, (*COLUMNS, "payload", "result")):
        yield "".join(
            json.dumps(
                {
                    **_cells(row),
                    "payload": redact(definitions.get(row["name"]), row["payload"]),
                    "result": mask(row["result"]),
                },
                ensure_ascii=False,
            )
            + "\n"
            for row in page
        )
