"""Secrets stay out of what the API, the admin and logs show: nested keys, workflow inputs,
workflow definitions and URLs (userinfo, ``?token=``), not only a task's top-level fields."""

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from taskhub import schedule
from taskhub.builtins.http import HttpRequest, http_request
from taskhub.safety.masking import mask, mask_url
from taskhub.workflows.definitions import create_definition

pytestmark = pytest.mark.django_db

SECRETS = ("s3cret-pw", "tok-123", "key-456", "bearer-789", "hunter2")


def assert_no_secret(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert leaked == [], f"leaked {leaked} in {text[:500]}"


def test_nested_secret_keys_and_urls_in_a_payload_are_masked(viewer):
    task = schedule(
        "test.noop",
        {
            "account": {"name": "acme", "api_key": "key-456", "auth": {"password": "hunter2"}},
            "callbacks": ["https://bob:s3cret-pw@hooks.example.com/in?token=tok-123&page=2"],
        },
    )

    data = viewer.get(f"/api/tasks/{task.id}").json()

    assert_no_secret(str(data))
    assert data["payload"]["account"] == {
        "name": "acme",
        "api_key": "***",
        "auth": {"password": "***"},
    }
    assert data["payload"]["callbacks"] == ["https://***@hooks.example.com/in?token=***&page=2"]


def test_a_secret_field_is_masked_at_any_depth(viewer):
    task = schedule(
        "http.request",
        {
            "url": "https://example.com/x?api_key=key-456",
            "headers": {"Authorization": "Bearer bearer-789"},
        },
    )

    data = viewer.get(f"/api/tasks/{task.id}").json()

    assert data["payload"]["headers"] == "***"
    assert data["payload"]["url"] == "https://example.com/x?api_key=***"
    assert_no_secret(str(viewer.get("/api/tasks").json()))


def test_a_workflow_runs_input_is_masked(operator, viewer):
    create_definition(name="hooks", spec={"initialTask": {"type": "taskhub.ping"}})
    body = {
        "definition": "hooks",
        "input": {"target": "https://ops:hunter2@example.com/x", "client": {"secret": "s3cret-pw"}},
    }
    started = operator.post("/api/workflows", body, format="json")
    assert started.status_code == 201, started.json()

    shown = viewer.get(f"/api/workflows/{started.json()['id']}").json()

    assert_no_secret(str(started.json()) + str(shown))
    assert shown["input"] == {"target": "https://***@example.com/x", "client": {"secret": "***"}}


def test_a_workflow_definitions_step_payloads_are_masked_by_their_tasks_secret_fields(viewer):
    spec = {
        "initialTask": {
            "type": "http.request",
            "payload": {
                "url": "https://example.com/?token=tok-123",
                "headers": {"X-Custom": "bearer-789"},
            },
        },
        "transitions": {
            "next": {
                "type": "test.noop",
                "after": "initial",
                "payload": {"deep": {"private_key": "key-456"}},
            },
        },
    }
    definition = create_definition(name="calls", spec=spec)

    shown = viewer.get(f"/api/workflow-definitions/{definition.id}").json()

    assert_no_secret(str(shown) + str(viewer.get("/api/workflow-definitions").json()))
    assert shown["spec"]["initialTask"]["payload"]["headers"] == "***"
    assert shown["spec"]["transitions"]["next"]["payload"] == {"deep": {"private_key": "***"}}
    assert shown["spec"]["transitions"]["next"]["after"] == "initial"
    definition.refresh_from_db()
    assert definition.spec == spec  # stored as written: only what is shown is masked


class Ok(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_http_request_log_line_masks_userinfo_and_query_tokens(local_server, caplog):
    logger = logging.getLogger("test.http.request")
    url = f"http://bob:s3cret-pw@{local_server}/hook?token=tok-123&api_key=key-456&page=2"

    with caplog.at_level(logging.INFO, logger="test.http.request"):
        result = http_request(HttpRequest(url=url), SimpleNamespace(logger=logger))

    assert result["status_code"] == 200
    assert_no_secret(caplog.text)
    assert f"http://***@{local_server}/hook?token=***&api_key=***&page=2" in caplog.text


@pytest.mark.parametrize(
    "url,shown",
    [
        ("https://example.com/a?b=1", "https://example.com/a?b=1"),
        ("https://u:p@example.com:8443/a", "https://***@example.com:8443/a"),
        (
            "https://example.com/?access_token=x&sig=y&key=z",
            "https://example.com/?access_token=***&sig=***&key=***",
        ),
        ("not a url", "not a url"),
    ],
)
def test_mask_url(url, shown):
    assert mask_url(url) == shown


def test_mask_leaves_ordinary_values_alone():
    value = {"name": "n", "count": 3, "items": [1, "two", None], "dedup_key": "d", "ok": True}
    assert mask(value) == value
