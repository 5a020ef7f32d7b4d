"""Handlers that return, raise or log values a database cannot store (NUL, which PostgreSQL
refuses in text and jsonb; lone surrogates, which no database can encode as UTF-8): the values
are stored with U+FFFD in their place, and the worker keeps recording the tasks after them.

Before taskhub.safety.storable, one such value failed every later outcome flush of the worker: its
tasks stayed queued/running, holding their queue's slots, while its heartbeat kept it "live".
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from taskhub import schedule
from taskhub.models import Task, TaskLog
from taskhub.safety.storable import REPLACEMENT
from tests.support import wait_all_finished, wait_status
from tests.taskapp.tasks import NUL_TEXT, SURROGATE_TEXT

pytestmark = [pytest.mark.e2e]

NUL_STORED = NUL_TEXT.replace("\x00", REPLACEMENT)
SURROGATE_STORED = SURROGATE_TEXT.replace("\ud800", REPLACEMENT)
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00"


@pytest.fixture
def binary_url():
    """A real HTTP server answering every GET with a binary body (as an image URL would)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("content-length", str(len(BINARY)))
            self.end_headers()
            self.wfile.write(BINARY)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield f"http://127.0.0.1:{server.server_port}/image.png"
    server.shutdown()
    server.server_close()


def test_unstorable_values_are_stored_replaced_and_later_tasks_still_complete(e2e, binary_url):
    fetched = [schedule("http.request", {"url": binary_url}) for _ in range(4)]
    result = schedule("test.unstorable.result", {})
    error = schedule("test.unstorable.error", {})
    retried = schedule("test.unstorable.retry", {})
    logged = schedule("test.unstorable.log", {})
    wait_all_finished([t.id for t in (*fetched, result, error, retried, logged)], timeout=30)

    # The same worker and queue go on recording outcomes.
    pings = [schedule("taskhub.ping", {}).id for _ in range(20)]
    wait_all_finished(pings, timeout=60)
    assert Task.objects.filter(id__in=pings, status="completed").count() == 20

    body = BINARY.decode("utf-8", errors="replace").replace("\x00", REPLACEMENT)
    for task in fetched:
        assert Task.objects.get(id=task.id).result == {"status_code": 200, "body": body}

    done = Task.objects.get(id=result.id)
    assert done.status == "completed"
    assert done.result == {"body": NUL_STORED, "lone": SURROGATE_STORED, NUL_STORED: "a key too"}

    failed = Task.objects.get(id=error.id)
    assert failed.status == "failed"
    assert failed.error == f"ValueError: {NUL_STORED} / {SURROGATE_STORED}"
    assert NUL_STORED in failed.traceback and "\x00" not in failed.traceback
    assert failed.dead_letters.get().error == failed.error
    failed_event = failed.events.get(kind="failed")
    assert failed_event.data["error"] == failed.error

    second = Task.objects.get(id=retried.id)
    assert (second.status, second.result, second.attempt) == ("completed", "second attempt", 2)
    retry_event = second.events.get(kind="retrying")
    assert retry_event.data["error"] == f"RuntimeError: {NUL_STORED}"

    assert wait_status(logged.id, "completed").result == "logged"
    lines = list(TaskLog.objects.filter(task_id=logged.id).order_by("id"))
    assert [line.message for line in lines] == [f"log line: {NUL_STORED}", SURROGATE_STORED]
