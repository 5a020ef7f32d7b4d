"""The stream caps count a stream from the moment it is accepted, and give its place back however
it ends — also when the client leaves before the stream was ever iterated.

Driven in this process through Django's ASGI handler (real Redis, the test database), with a
client that reads nothing: its ``send`` never returns for the response start, as with a client
that stalls or leaves right after connecting. That pins the moment the old code left open: the
view has subscribed the stream, the stream body has not started.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.core.handlers.asgi import ASGIHandler

from taskhub.console import stream
from taskhub.console.roles import create_user

pytestmark = [pytest.mark.timeout(60)]

CAP = 2


@pytest.fixture
def token(transactional_db, settings) -> str:
    settings.TASKHUB = {**settings.TASKHUB, "EVENTS_MAX_STREAMS_PER_USER": CAP}
    return create_user("streamer", "operator")[2]


class StalledClient:
    """One GET of the stream whose reader never takes the response, until it disconnects."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.status: int | None = None
        self.answered = asyncio.Event()
        self.gone = asyncio.Event()
        self._request_sent = False

    @property
    def scope(self) -> dict:
        path = "/api/events/stream"
        headers = [(b"host", b"testserver"), (b"authorization", f"Token {self.token}".encode())]
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
            "headers": headers,
        }

    async def receive(self) -> dict:
        if not self._request_sent:
            self._request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.answered.set()
            # Stalls for good: the handler cancels this send when the client disconnects.
            await asyncio.get_running_loop().create_future()


async def open_and_leave(token: str, count: int) -> list[int | None]:
    """Open ``count`` streams at once, wait until each got its status, then all disconnect."""
    app = ASGIHandler()
    clients = [StalledClient(token) for _ in range(count)]
    served = [asyncio.create_task(app(c.scope, c.receive, c.send)) for c in clients]
    await asyncio.wait_for(asyncio.gather(*(c.answered.wait() for c in clients)), 30)
    for client in clients:
        client.gone.set()
    await asyncio.wait_for(asyncio.gather(*served), 30)
    await asyncio.sleep(0.1)  # releases handed over from the thread that closes responses
    return [c.status for c in clients]


def leftovers() -> tuple[int, dict[str, int]]:
    return len(stream.hub.subscribers), dict(stream._open_streams)


def stop_hub() -> None:
    for task in (stream.hub._task, stream.hub._fanout):
        if task is not None:
            task.cancel()


def run(coroutine):
    async def main():
        try:
            return await coroutine
        finally:
            stop_hub()

    return asyncio.run(main())


def test_concurrent_streams_of_one_user_get_at_most_the_cap(token):
    statuses = run(open_and_leave(token, CAP + 3))

    assert sorted(statuses) == [200] * CAP + [429] * 3


def test_streams_left_before_they_were_iterated_leave_nothing_behind(token):
    async def twice():
        first = await open_and_leave(token, CAP)
        # the places are free again: the same user opens as many once more
        second = await open_and_leave(token, CAP)
        return first, second, leftovers()

    first, second, (subscribers, counted) = run(twice())

    assert first == second == [200] * CAP
    assert subscribers == 0 and counted == {}


def test_a_client_that_leaves_while_its_stream_is_set_up_leaves_nothing_behind(token, monkeypatch):
    # Hold the view after it subscribed, while it looks up its starting point.
    parked, resume = threading.Event(), threading.Event()
    newest_id = stream._newest_id

    def slow_newest_id() -> int:
        parked.set()
        resume.wait(10)
        return newest_id()

    monkeypatch.setattr(stream, "_newest_id", slow_newest_id)

    async def leave_during_setup():
        client = StalledClient(token)
        served = asyncio.create_task(ASGIHandler()(client.scope, client.receive, client.send))
        await asyncio.get_running_loop().run_in_executor(None, parked.wait, 10)
        client.gone.set()  # the view is cancelled at its await
        await asyncio.sleep(0.2)
        resume.set()
        await asyncio.wait_for(served, 30)
        await asyncio.sleep(0.1)
        return client.status, leftovers()

    status, (subscribers, counted) = run(leave_during_setup())

    assert parked.is_set() and status is None  # it left before any response went out
    assert subscribers == 0 and counted == {}
