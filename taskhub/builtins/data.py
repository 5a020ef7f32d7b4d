"""``data.sync`` and ``data.process_batch``: chunked data work that resumes where it stopped.

Both feed items to a registered **data handler**: a per-item ``transform`` (validation,
cleaning, mapping; it raises ``ValueError``/``TypeError``/``KeyError``/:class:`ItemError` for a bad
item) and an optional ``commit(outputs, chunk)`` that writes a chunk's results::

    from taskhub.builtins.data import data_handler

    def save_contacts(outputs, chunk):
        Contact.objects.bulk_create(outputs)

    @data_handler("contacts.import", commit=save_contacts)
    def clean_contact(item: dict) -> Contact:
        if "@" not in item.get("email", ""):
            raise ValueError("no e-mail address")
        return Contact(email=item["email"].strip().lower())

Each chunk (a page for ``data.sync``) is transformed outside any transaction, then its
``commit``, its item errors and the task's :class:`~taskhub.builtins.models.BatchCheckpoint` are
written in **one** transaction. A retry — after an error, a timeout or a kill -9 — starts after
the last committed chunk, so no committed chunk is ever done twice. Item errors are recorded
(position, item, why); the task fails only when they pass the error threshold.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

import httpx
from django.core.files.storage import default_storage
from django.db import transaction
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator, model_validator

from ..conf import taskhub_settings
from ..definitions.registry import task
from ..definitions.retry import Exponential
from ..definitions.task_types import TaskType
from ..errors import PermanentError
from ..safety.net import guarded_client
from .bodies import read_body, read_excerpt, text_of
from .models import BatchCheckpoint, BatchChunk, BatchItemError

ERRORS_IN_RESULT = 20
ITEM_EXCERPT = 2000


class ItemError(ValueError):
    """Raised by a transform for an item it refuses; recorded, the batch goes on."""


#: Exceptions from a transform that mean "this item is bad" rather than "try again later".
ITEM_ERRORS = (ValueError, TypeError, KeyError, LookupError)


@dataclass(frozen=True, kw_only=True)
class ChunkInfo:
    """What ``commit`` learns about the chunk it is writing."""

    task_id: str
    index: int
    offset: int
    attempt: int


@dataclass(frozen=True, kw_only=True)
class DataHandler:
    name: str
    transform: Callable[[Any], Any]
    commit: Callable[[list[Any], ChunkInfo], None] | None = None


_handlers: dict[str, DataHandler] = {}


def data_handler(
    name: str, *, commit: Callable[[list[Any], ChunkInfo], None] | None = None
) -> Callable[[Callable[[Any], Any]], DataHandler]:
    """Register ``transform`` (and ``commit``) under ``name`` for data.sync / data.process_batch.

    Register in a module every process imports (an app's ``tasks.py``)."""

    def register(transform: Callable[[Any], Any]) -> DataHandler:
        handler = DataHandler(name=name, transform=transform, commit=commit)
        _handlers[name] = handler
        return handler

    return register


def get_handler(name: str) -> DataHandler:
    try:
        return _handlers[name]
    except KeyError:
        raise PermanentError(f"no data handler named {name!r} is registered") from None


def _known_handler(name: str) -> str:
    if name not in _handlers:
        known = ", ".join(sorted(_handlers)) or "none"
        raise ValueError(f"no data handler named {name!r} is registered (known: {known})")
    return name


class Thresholds(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    handler: str
    #: the batch fails when more than this share (0..1) of its items failed
    error_threshold: float | None = Field(default=None, ge=0, le=1, alias="errorThreshold")
    #: …or when more than this many items failed
    max_errors: int | None = Field(default=None, ge=0, alias="maxErrors")

    @field_validator("handler")
    @classmethod
    def handler_registered(cls, value: str) -> str:
        return _known_handler(value)


class SyncData(Thresholds):
    """Payload of ``data.sync``: GET ``url`` page by page until the next cursor is empty."""

    url: AnyHttpUrl
    params: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    cursor_param: str = Field(default="cursor", alias="cursorParam")
    #: where the page's items are in the JSON body (dotted path)
    items_field: str = Field(default="items", alias="itemsField")
    #: where the next page's cursor is (dotted path); empty/missing ends the sync
    next_cursor_field: str = Field(default="next_cursor", alias="nextCursorField")
    #: optional: where the total number of items is, for progress
    total_field: str | None = Field(default=None, alias="totalField")
    max_pages: int | None = Field(default=None, ge=1, alias="maxPages")
    timeout: float = Field(default=30.0, gt=0, le=300)


class ProcessBatch(Thresholds):
    """Payload of ``data.process_batch``: items inline, or a JSONL/CSV file or URL."""

    items: list[Any] | None = None
    #: a file in Django's default storage (e.g. an upload), JSONL or CSV
    file: str | None = None
    url: AnyHttpUrl | None = None
    format: Literal["jsonl", "csv"] | None = None
    chunk_size: int | None = Field(default=None, ge=1, le=100_000, alias="chunkSize")

    @model_validator(mode="after")
    def one_source(self) -> ProcessBatch:
        given = [n for n in ("items", "file", "url") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of items, file or url")
        if self.file is not None and (".." in self.file.split("/") or self.file.startswith("/")):
            raise ValueError("file must be a relative path in the default storage")
        return self


# -- the chunk loop ------------------------------------------------------------------------------


def load_checkpoint(ctx) -> BatchCheckpoint:
    checkpoint, _ = BatchCheckpoint.objects.get_or_create(
        task_id=uuid.UUID(ctx.task_id), defaults={"task_name": ctx.name}
    )
    return checkpoint


def _excerpt(item: Any) -> Any:
    text = json.dumps(item, default=str)
    return item if len(text) <= ITEM_EXCERPT else text[:ITEM_EXCERPT] + "…"


def run_chunk(
    checkpoint: BatchCheckpoint,
    handler: DataHandler,
    items: list[Any],
    ctx,
    *,
    cursor: str | None = None,
    finished: bool = False,
) -> BatchCheckpoint:
    """Transform one chunk, then commit its outputs, errors and the checkpoint together."""
    outputs, errors = [], []
    for position, item in enumerate(items, start=checkpoint.offset):
        try:
            outputs.append(handler.transform(item))
        except ITEM_ERRORS as exc:
            message = str(exc) or type(exc).__name__
            shown = item.line if isinstance(item, _Unparseable) else item
            errors.append(BatchItemError(position=position, item=_excerpt(shown), error=message))
    index = checkpoint.chunks_done
    with transaction.atomic():
        current = BatchCheckpoint.objects.select_for_update().get(pk=checkpoint.pk)
        if current.chunks_done != index:
            # Only a second attempt running at the same time could get here; never apply twice.
            raise RuntimeError(f"chunk {index} was committed by another attempt")
        info = ChunkInfo(
            task_id=ctx.task_id, index=index, offset=current.offset, attempt=ctx.attempt
        )
        if handler.commit is not None and outputs:
            handler.commit(outputs, info)
        for error in errors:
            error.checkpoint = current
        BatchItemError.objects.bulk_create(errors)
        BatchChunk.objects.create(
            checkpoint=current,
            index=index,
            offset=current.offset,
            items=len(items),
            succeeded=len(outputs),
            failed=len(errors),
            attempt=ctx.attempt,
        )
        current.chunks_done = index + 1
        current.offset += len(items)
        current.succeeded += len(outputs)
        current.failed += len(errors)
        if cursor is not None:
            current.cursor = cursor
        current.finished = finished
        current.save()
    return current


def check_thresholds(checkpoint: BatchCheckpoint, payload: Thresholds, *, final: bool) -> None:
    """Fail once errors pass the limits: at the end, or early when the total is known."""
    failed = checkpoint.failed
    if payload.max_errors is not None and failed > payload.max_errors:
        raise PermanentError(_too_many(checkpoint, f"more than {payload.max_errors} items"))
    threshold = payload.error_threshold
    if threshold is None:
        threshold = taskhub_settings.BATCH_ERROR_THRESHOLD
    base = checkpoint.total if (checkpoint.total and not final) else checkpoint.offset
    if final and base and failed / base > threshold:
        raise PermanentError(_too_many(checkpoint, f"over {threshold:.0%} of items"))
    if not final and checkpoint.total and failed > threshold * checkpoint.total:
        raise PermanentError(_too_many(checkpoint, f"over {threshold:.0%} of items"))


def _too_many(checkpoint: BatchCheckpoint, limit: str) -> str:
    first = checkpoint.errors.order_by("position").first()
    example = f"; first: item {first.position}: {first.error}" if first else ""
    return f"{checkpoint.failed} of {checkpoint.offset} items failed, {limit}{example}"


def summary(checkpoint: BatchCheckpoint, resumed_from: int) -> dict:
    errors = checkpoint.errors.order_by("position")[:ERRORS_IN_RESULT]
    return {
        "processed": checkpoint.offset,
        "succeeded": checkpoint.succeeded,
        "failed": checkpoint.failed,
        "chunks": checkpoint.chunks_done,
        "resumed_from_chunk": resumed_from,
        "errors": [{"position": e.position, "error": e.error} for e in errors],
    }


# -- data.process_batch --------------------------------------------------------------------------


def _read_url(url: str, limit: int) -> bytes:
    try:
        with guarded_client(timeout=60) as client, client.stream("GET", url) as response:
            if response.status_code >= 500:
                raise httpx.HTTPStatusError(
                    f"server answered {response.status_code}",
                    request=response.request,
                    response=response,
                )
            if response.status_code >= 300:
                raise PermanentError(f"server answered {response.status_code} for {url}")
            return read_body(response, limit, limit_name="BATCH_MAX_DOWNLOAD_BYTES")
    except httpx.TransportError as exc:
        raise ConnectionError(f"cannot download {url}: {exc}") from exc


def _source_text(payload: ProcessBatch) -> tuple[str, str]:
    """(text, format) of a file or URL input."""
    limit = taskhub_settings.BATCH_MAX_DOWNLOAD_BYTES
    if payload.file is not None:
        if not default_storage.exists(payload.file):
            raise PermanentError(f"no file {payload.file!r} in the default storage")
        with default_storage.open(payload.file, "rb") as handle:
            raw, name = handle.read(limit + 1), payload.file
    else:
        raw, name = _read_url(str(payload.url), limit), str(payload.url).split("?")[0]
    if len(raw) > limit:
        raise PermanentError(f"input is over the limit of {limit} bytes")
    fmt = payload.format or ("csv" if name.lower().endswith(".csv") else "jsonl")
    try:
        return raw.decode("utf-8-sig"), fmt
    except UnicodeDecodeError as exc:
        raise PermanentError(f"input is not UTF-8 text: {exc}") from None


class _Unparseable:
    """A line that is not JSON: handed to the transform loop as an item error."""

    def __init__(self, line: str, error: str):
        self.line, self.error = line, error


def _iter_items(text: str, fmt: str) -> Iterator[Any]:
    if fmt == "csv":
        yield from csv.DictReader(io.StringIO(text))
        return
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            yield _Unparseable(line, f"invalid JSON: {exc}")


def _guard_unparseable(handler: DataHandler) -> DataHandler:
    def transform(item: Any) -> Any:
        if isinstance(item, _Unparseable):
            raise ItemError(item.error)
        return handler.transform(item)

    return DataHandler(name=handler.name, transform=transform, commit=handler.commit)


@task(
    "data.process_batch",
    queue="data",
    type=TaskType.DATA_SYNC,
    schema=ProcessBatch,
    max_attempts=5,
    retry=Exponential(base=2, cap=120),
    timeout=3600,
)
def process_batch(payload: ProcessBatch, ctx) -> dict:
    """Apply a registered data handler to every item, chunk by chunk, resuming after a retry."""
    handler = _guard_unparseable(get_handler(payload.handler))
    checkpoint = load_checkpoint(ctx)
    resumed_from = checkpoint.chunks_done
    if payload.items is not None:
        items: Iterator[Any] = iter(payload.items)
        total = len(payload.items)
    else:
        text, fmt = _source_text(payload)
        total = sum(1 for _ in _iter_items(text, fmt))
        items = _iter_items(text, fmt)
    if checkpoint.total != total:
        checkpoint.total = total
        checkpoint.save(update_fields=["total", "updated_at"])
    if resumed_from:
        ctx.logger.info("resuming after chunk %d (%d items done)", resumed_from, checkpoint.offset)
    size = payload.chunk_size or taskhub_settings.BATCH_CHUNK_SIZE
    items = islice(items, checkpoint.offset, None)
    while not checkpoint.finished:
        ctx.check_cancelled()
        chunk = list(islice(items, size))
        done = checkpoint.offset + len(chunk) >= total
        checkpoint = run_chunk(checkpoint, handler, chunk, ctx, finished=done)
        ctx.set_progress(100 * checkpoint.offset / total if total else 100)
        check_thresholds(checkpoint, payload, final=False)
    check_thresholds(checkpoint, payload, final=True)
    return summary(checkpoint, resumed_from)


# -- data.sync -----------------------------------------------------------------------------------


def _dig(body: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body


def fetch_page(payload: SyncData, cursor: str) -> tuple[list[Any], str, int | None]:
    """(items, next cursor, total) of one page; 5xx and network errors retry, 4xx fail."""
    params = dict(payload.params)
    if cursor:
        params[payload.cursor_param] = cursor
    limit = int(taskhub_settings.HTTP_MAX_RESPONSE_BYTES)
    try:
        with (
            guarded_client(timeout=payload.timeout) as client,
            client.stream(
                "GET", str(payload.url), params=params, headers=payload.headers
            ) as response,
        ):
            status = response.status_code
            if status >= 300:
                excerpt = text_of(response, read_excerpt(response, 200))
            else:
                raw = read_body(response, limit, limit_name="HTTP_MAX_RESPONSE_BYTES")
    except httpx.TransportError as exc:
        raise ConnectionError(f"cannot reach {payload.url}: {exc}") from exc
    if status >= 500:
        raise ConnectionError(f"server answered {status}")
    if status >= 300:
        raise PermanentError(f"server answered {status}: {excerpt}")
    try:
        body = json.loads(raw)
    except ValueError:
        raise PermanentError("the page is not JSON") from None
    items = _dig(body, payload.items_field)
    if not isinstance(items, list):
        raise PermanentError(f"the page has no list at {payload.items_field!r}")
    next_cursor = _dig(body, payload.next_cursor_field)
    total = _dig(body, payload.total_field) if payload.total_field else None
    return items, "" if next_cursor in (None, "") else str(next_cursor), total


@task(
    "data.sync",
    queue="data",
    type=TaskType.DATA_SYNC,
    schema=SyncData,
    max_attempts=6,
    retry=Exponential(base=2, cap=300),
    timeout=3600,
    secret_fields=("headers",),
)
def sync_data(payload: SyncData, ctx) -> dict:
    """Pull every page of an HTTP API into a data handler, one committed page at a time."""
    handler = get_handler(payload.handler)
    checkpoint = load_checkpoint(ctx)
    resumed_from = checkpoint.chunks_done
    if resumed_from:
        ctx.logger.info("resuming at page %d (cursor %r)", resumed_from + 1, checkpoint.cursor)
    while not checkpoint.finished:
        ctx.check_cancelled()
        items, next_cursor, total = fetch_page(payload, checkpoint.cursor)
        if isinstance(total, int) and total != checkpoint.total:
            checkpoint.total = total
            checkpoint.save(update_fields=["total", "updated_at"])
        pages = checkpoint.chunks_done + 1
        done = not next_cursor or (payload.max_pages is not None and pages >= payload.max_pages)
        checkpoint = run_chunk(checkpoint, handler, items, ctx, cursor=next_cursor, finished=done)
        if checkpoint.total:
            ctx.set_progress(100 * checkpoint.offset / checkpoint.total)
        elif payload.max_pages:
            ctx.set_progress(100 * pages / payload.max_pages)
        check_thresholds(checkpoint, payload, final=False)
    check_thresholds(checkpoint, payload, final=True)
    result = summary(checkpoint, resumed_from)
    result["pages"] = result.pop("chunks")
    return result
