"""``GET /api/events/stream``: task events as Server-Sent Events, served by async views (ASGI).

One subscriber task per web process listens on the Redis channel :mod:`taskhub.engine.events`
publishes to; a fan-out task takes every message that arrived since its last round, reads the
announced rows in one query, encodes each event once and hands each open stream the ones that
match its filters (bounded per stream), waking each stream once per round. Every stream starts
by replaying the rows after its ``Last-Event-ID`` from the database, and catches up from the
rows again whenever a wake-up may have been lost (Redis reconnect, a stream too far behind).
Streams hold no database connection while they wait: the replay queries run in a thread that
closes its connection afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import secrets
import threading
import uuid
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.response import Response

from ..conf import taskhub_settings
from ..engine.broker import get_redis, key, redis_url
from ..engine.events import channel, read_events
from ..models import TaskEvent
from .api.permissions import OPERATOR, VIEWER, RolePermission
from .api.views import TaskhubAPIView
from .roles import has_role

logger = logging.getLogger(__name__)

FILTERS = ("user_id", "task", "queue", "correlation_id", "workflow")
QUEUE_SIZE = 1000  # events a stream may have pending; beyond that it catches up from the rows
_open_streams: Counter[str] = Counter()
# Taken for the check-and-count of a new stream (no await inside, so it never waits long): under
# ASGI one loop runs every request, but a release can come from the thread that closes responses.
_open_streams_lock = threading.Lock()


def ticket_key(ticket: str) -> str:
    return key("events", "ticket", ticket)


# --- tickets --------------------------------------------------------------------------------------


class TicketRequest(serializers.Serializer):
    user_id = serializers.CharField(max_length=200)


class TicketResponse(serializers.Serializer):
    ticket = serializers.CharField()
    expires_at = serializers.DateTimeField()


class EventTickets(TaskhubAPIView):
    """Mint a short-lived, single-use ticket that lets a browser stream one user's events."""

    permission_classes = [RolePermission]
    roles = {"POST": OPERATOR}

    @extend_schema(
        summary="Mint a single-use ticket to stream one user's task events",
        operation_id="event_tickets_create",
        request=TicketRequest,
        responses={201: TicketResponse},
    )
    def post(self, request):
        body = TicketRequest(data=request.data)
        body.is_valid(raise_exception=True)
        ttl = int(taskhub_settings.EVENTS_TICKET_TTL)
        ticket = secrets.token_urlsafe(24)
        get_redis().set(ticket_key(ticket), body.validated_data["user_id"], ex=ttl)
        expires_at = timezone.now() + dt.timedelta(seconds=ttl)
        return Response({"ticket": ticket, "expires_at": expires_at}, status=201)


# --- the per-process fan-out ----------------------------------------------------------------------


class Live(NamedTuple):
    """One announced event, read once per process and encoded once for every stream."""

    id: int
    payload: dict[str, Any]
    text: bytes  # the SSE frame


class Subscriber:
    """One open stream's view of the live feed: the events waiting for it, and its wake-up.

    The hub appends to ``pending`` and wakes the stream; the stream takes everything pending in
    one go and writes it as one chunk. No task, queue or timer per event (the stream's one timer
    rings for its keep-alive): with 1,000 streams, each batch the hub fans out costs one wake-up
    per stream, however many events it holds.
    """

    __slots__ = ("filters", "key", "pending", "resync", "alarm", "_waiter")

    def __init__(self, filters: dict[str, str]):
        self.filters = filters
        #: Streams with the same filters see the same events: the hub matches once per key.
        self.key = tuple(sorted((k, v) for k, v in filters.items() if v))
        self.pending: deque[Live] = deque()
        self.resync = False  # live messages may have been missed: catch up from the rows
        self.alarm = False  # the stream's timer rang (keep-alive or end of lifetime)
        self._waiter: asyncio.Future | None = None

    def matches(self, event: dict[str, Any]) -> bool:
        return all(str(event[k]) == v for k, v in self.key)

    def offer(self, events: list[Live]) -> None:
        """Hand the stream these (matching) events."""
        if not events:
            return
        if len(self.pending) + len(events) > QUEUE_SIZE:
            # A stream that fell this far behind reads them from the rows instead.
            self.pending.clear()
            self.resync = True
        else:
            self.pending.extend(events)
        self.wake()

    def request_resync(self) -> None:
        self.resync = True
        self.wake()

    def ring(self) -> None:
        self.alarm = True
        self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until events are pending, a resync is due or the alarm rang."""
        if self.pending or self.resync or self.alarm:
            return
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None


class Hub:
    """The web process's single Redis subscription, shared by all of its streams.

    Two tasks: one reads the channel and only collects the messages; the other fans them out,
    one batch at a time: every message that arrived since the last batch, one query for their
    rows, each event encoded once, matched once per distinct filter, and one wake-up per stream.
    Under load the batches grow instead of a backlog building up behind the event loop.
    """

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self._task: asyncio.Task | None = None
        self._fanout: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._mail: asyncio.Event | None = None
        self._inbox: list[bytes] = []
        # One thread (so one DB connection per process) for the rows announced on the channel.
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="taskhub-events")

    async def join(self, sub: Subscriber) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop: a server restarted in the same process (tests)
            self._loop, self._ready, self._mail = loop, asyncio.Event(), asyncio.Event()
            self._inbox, self.subscribers = [], set()
            self._task = self._fanout = None
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._listen())
        if self._fanout is None or self._fanout.done():
            self._fanout = loop.create_task(self._fan_out())
        self.subscribers.add(sub)
        try:
            await asyncio.wait_for(self._ready.wait(), 5)
        except TimeoutError:
            logger.warning("event stream subscribed before Redis answered; replay covers it")

    def leave(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        if not self.subscribers:  # idle: don't keep the reader's connection open
            self._reader.submit(connection.close)

    async def _listen(self) -> None:
        while True:
            client = aioredis.Redis.from_url(redis_url())
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(channel())
                    async for message in pubsub.listen():
                        if message["type"] == "subscribe":
                            self._on_subscribed()
                        elif message["type"] == "message":
                            self._inbox.append(message["data"])
                            self._mail.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the process's streams alive; they resync after
                logger.warning("event subscriber lost Redis (%s); reconnecting", exc)
                await asyncio.sleep(1)
            finally:
                await client.aclose()

    async def _fan_out(self) -> None:
        while True:
            await self._mail.wait()
            self._mail.clear()
            batch, self._inbox = self._inbox, []
            try:
                await self._deliver(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the fan-out die: the streams catch up from the rows
                logger.exception("could not fan out %d event messages", len(batch))
                self._resync_all()

    def _on_subscribed(self) -> None:
        self._ready.set()
        # Publishers check for listeners at most once a second: catch up after they noticed us,
        # and after a reconnect, whose outage window lost messages.
        self._resync_all()
        asyncio.get_running_loop().call_later(1.5, self._resync_all)

    def _resync_all(self) -> None:
        for sub in self.subscribers:
            sub.request_resync()

    async def _deliver(self, messages: list[bytes]) -> None:
        if not self.subscribers or not messages:
            return
        ids: set[int] = set()
        for raw in messages:
            try:
                ids.update(int(e["id"]) for e in json.loads(raw)["events"])
            except (ValueError, KeyError, TypeError):
                logger.warning("ignoring a malformed event message")
        if not ids:
            return
        loop = asyncio.get_running_loop()
        try:
            rows = await loop.run_in_executor(self._reader, _read_announced, sorted(ids))
        except Exception as exc:
            logger.warning("could not read announced events (%s); streams will resync", exc)
            self._resync_all()
            return
        events = [Live(e["id"], e, _sse(e).encode()) for e in rows]
        if not events:
            return
        # The streams write in the order they are woken: start each round at a random one, so
        # that no stream is always served last (1,000 writes take tens of milliseconds).
        subs = list(self.subscribers)
        start = random.randrange(len(subs)) if subs else 0
        by_key: dict[tuple, list[Live]] = {}
        for sub in subs[start:] + subs[:start]:
            matching = by_key.get(sub.key)
            if matching is None:
                matching = by_key[sub.key] = [e for e in events if sub.matches(e.payload)]
            sub.offer(matching)


def _read_announced(ids: list[int]) -> list[dict[str, Any]]:
    try:
        return read_events(ids=ids, limit=len(ids))
    except Exception:
        connection.close_if_unusable_or_obsolete()
        raise


hub = Hub()


# --- the caps -------------------------------------------------------------------------------------


class StreamSlot:
    """An accepted stream's place under the caps and in the hub: counted when the request is
    accepted, given back exactly once — when the stream ends, when its response is closed
    without ever being iterated (the client left first), or when the view is cancelled before
    the response exists. Counting only once the stream ran let concurrent requests all pass the
    check, and a stream never iterated stayed subscribed for ever."""

    def __init__(self, principal: str):
        self.principal = principal
        self.sub: Subscriber | None = None
        self._loop = asyncio.get_running_loop()
        self._released = False

    @classmethod
    def take(cls, principal: str) -> StreamSlot | str:
        """A slot, or why there is none (the message of the 429)."""
        with _open_streams_lock:
            if sum(_open_streams.values()) >= taskhub_settings.EVENTS_MAX_STREAMS:
                return "Too many open streams in this process."
            if _open_streams[principal] >= taskhub_settings.EVENTS_MAX_STREAMS_PER_USER:
                return "Too many open streams for this user."
            _open_streams[principal] += 1
        return cls(principal)

    def release(self) -> None:
        with _open_streams_lock:
            if self._released:
                return
            self._released = True
            _open_streams[self.principal] -= 1
            if _open_streams[self.principal] <= 0:
                del _open_streams[self.principal]
        if self.sub is not None:
            if _running_loop() is self._loop:
                hub.leave(self.sub)
            elif not self._loop.is_closed():  # Django closes responses from a worker thread
                self._loop.call_soon_threadsafe(hub.leave, self.sub)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


# --- the stream view ------------------------------------------------------------------------------


def _replay(
    after: int, limit: int, filters: dict[str, str], check_gap: bool
) -> tuple[list[dict], bool]:
    """Rows after ``after`` (at most ``limit``) and whether the client must reset instead.

    ``check_gap``: ``after`` came from the client, whose last row may have been pruned since.
    """
    try:
        reset = False
        if check_gap and after and not TaskEvent.objects.filter(id=after).exists():
            newest = TaskEvent.objects.order_by("-id").values_list("id", flat=True).first()
            reset = newest is not None and newest > after  # pruned (older than retention)
        events = read_events(after=after, limit=limit + 1, **filters)
        if reset or len(events) > limit:
            return [], True
        return events, False
    finally:
        connection.close()  # the stream must not keep a connection while it waits


def _newest_id() -> int:
    try:
        return TaskEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    finally:
        connection.close()


def _authenticate(request: HttpRequest, ticket: str | None) -> tuple[int, str, str]:
    """(status, principal, forced user_id): 200 if allowed, else 401/403."""
    try:
        if ticket is not None:
            user_id = _redeem(ticket) if ticket else None
            if user_id is None:
                return 401, "", ""
            user_id = user_id.decode()
            return 200, f"user:{user_id}", user_id
        user = _token_user(request) or request.user
        if not user.is_authenticated:
            return 401, "", ""
        if not has_role(user, VIEWER):
            return 403, "", ""
        return 200, f"operator:{user.pk}", ""
    finally:
        connection.close()


def _redeem(ticket: str) -> bytes | None:
    """The ticket's user id, once: GET and DEL in one MULTI, so a second use finds nothing."""
    pipe = get_redis().pipeline(transaction=True)
    pipe.get(ticket_key(ticket))
    pipe.delete(ticket_key(ticket))
    user_id, deleted = pipe.execute()
    return user_id if deleted else None


def _token_user(request: HttpRequest):
    header = request.headers.get("Authorization", "")
    if not header.startswith("Token "):
        return None
    token = Token.objects.select_related("user").filter(key=header[6:].strip()).first()
    return token.user if token and token.user.is_active else None


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"detail": message}, status=status)


def _sse(event: dict[str, Any]) -> str:
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"


class EventStreamResponse(StreamingHttpResponse):
    """The SSE response. Django's ASGI handler iterates the stream's generator (which yields
    bytes) directly, instead of through StreamingHttpResponse's two re-wrapping async generators
    and a copy per chunk: with 1,000 streams that is 1,000 × each of them per event batch."""

    slot: StreamSlot | None = None

    def __aiter__(self):
        return self._iterator

    def close(self) -> None:
        super().close()
        if self.slot is not None:
            self.slot.release()  # a stream never iterated has no ``finally`` to do it


async def event_stream(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _error(405, "Method not allowed.")
    ticket = request.GET.get("ticket")
    status, principal, forced_user = await sync_to_async(_authenticate)(request, ticket)
    if status != 200:
        return _error(status, "Authentication required." if status == 401 else "No role.")
    filters = {f: request.GET.get(f, "") for f in FILTERS}
    for name, what in (("task", "a task id"), ("workflow", "a workflow run id")):
        if filters[name]:
            try:
                filters[name] = str(uuid.UUID(filters[name]))
            except ValueError:
                return _error(400, f"{name} must be {what}.")
    if forced_user:
        filters["user_id"] = forced_user
    slot = StreamSlot.take(principal)  # counted now: the awaits below let other requests in
    if isinstance(slot, str):
        return _error(429, slot)
    last_id = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or ""
    after = int(last_id) if last_id.isdigit() else None
    lifetime = float(taskhub_settings.EVENTS_STREAM_LIFETIME)
    # Subscribe and fix the starting point before the 200 goes out: a client that saw the
    # response may rely on every later commit reaching it.
    try:
        sub = slot.sub = Subscriber(filters)
        await hub.join(sub)
        cursor = after if after is not None else await sync_to_async(_newest_id)()
        await sync_to_async(close_old_connections)()
    except BaseException:  # cancelled (the client left) or failed: no response will close it
        slot.release()
        raise
    response = EventStreamResponse(
        _stream(sub, slot, cursor, lifetime, after is not None),
        content_type="text/event-stream",
    )
    response.slot = slot
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"
    return response


async def _stream(sub: Subscriber, slot: StreamSlot, cursor: int, lifetime: float, resumed: bool):
    filters = sub.filters
    loop = asyncio.get_running_loop()
    deadline = loop.time() + lifetime
    keepalive = float(taskhub_settings.EVENTS_KEEPALIVE)
    limit = int(taskhub_settings.EVENTS_REPLAY_LIMIT)
    sent: deque[int] = deque(maxlen=4 * QUEUE_SIZE)
    seen: set[int] = set()
    # One timer per keep-alive period, not per wait: it rings when the stream may have been
    # quiet for ``keepalive`` seconds (or its lifetime ends); if it wrote since, it re-arms.
    wrote = loop.time()
    timer = loop.call_at(min(wrote + keepalive, deadline), sub.ring)
    try:
        yield b"retry: 3000\n\n"
        sub.resync = True
        while True:
            if sub.resync:
                sub.resync = False
                sub.pending.clear()  # committed rows: the replay reads them (and what was missed)
                replayed, reset = await sync_to_async(_replay)(cursor, limit, filters, resumed)
                resumed = False
                if reset:
                    cursor = await sync_to_async(_newest_id)()
                    yield f"event: reset\ndata: {json.dumps({'after': cursor})}\n\n".encode()
                    wrote = loop.time()
                    replayed = []
                events = [Live(e["id"], e, b"") for e in replayed]
            else:
                await sub.wait()
                if sub.alarm:
                    sub.alarm = False
                    now = loop.time()
                    if now >= deadline:
                        return
                    if now - wrote >= keepalive:
                        yield b": keep-alive\n\n"
                        wrote = now
                    timer = loop.call_at(min(wrote + keepalive, deadline), sub.ring)
                if sub.resync:
                    continue
                events = list(sub.pending)
                sub.pending.clear()
            frames = []
            for event in sorted(events, key=_by_id):
                if event.id in seen:
                    continue
                if len(sent) == sent.maxlen:
                    seen.discard(sent[0])
                sent.append(event.id)
                seen.add(event.id)
                cursor = max(cursor, event.id)
                frames.append(event.text or _sse(event.payload).encode())
            if frames:
                yield b"".join(frames)  # one write for everything that was pending
                wrote = loop.time()
    finally:
        timer.cancel()
        slot.release()


def _by_id(event: Live) -> int:
    return event.id
