"""``GET /api/tasks/export``: the list's filters and search as a CSV or JSON Lines download,
streamed page by page, with nothing secret in it and no cell a spreadsheet would run."""

import csv
import io
import json

import pytest
from django.utils import timezone

from taskhub.console import export
from taskhub.engine.enqueue import schedule
from taskhub.models import OperatorAction, Task, TaskStatus

pytestmark = pytest.mark.django_db

SECRETS = ("hunter2", "tok-123", "s3cret-pw", "key-456")


def download(client, **params) -> tuple[object, str]:
    response = client.get("/api/tasks/export", params)
    assert response.status_code == 200, response.content
    assert response.streaming
    return response, b"".join(response.streaming_content).decode()


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def json_rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_csv_has_the_columns_and_the_rows_the_filters_select_newest_first(viewer):
    old = schedule("test.noop", {"n": 1}, correlation_id="c-1", user_id="u1")
    new = schedule("test.noop", {"n": 2}, correlation_id="c-2", user_id="u2")
    schedule("taskhub.ping", {})
    Task.objects.filter(id=new.id).update(
        status=TaskStatus.FAILED, attempt=2, error="boom", completed_at=timezone.now()
    )

    response, text = download(viewer, format="csv", task="test.noop")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="tasks-') and disposition.endswith('.csv"')
    assert text.splitlines()[0] == ",".join(export.COLUMNS)
    rows = csv_rows(text)
    assert [r["id"] for r in rows] == [str(new.id), str(old.id)]
    assert rows[0]["status"] == "failed" and rows[0]["error"] == "boom"
    assert (rows[0]["attempt"], rows[0]["max_attempts"]) == ("2", str(new.max_attempts))
    assert rows[0]["correlation_id"] == "c-2" and rows[0]["user_id"] == "u2"
    assert rows[0]["completed_at"].endswith("Z") and rows[1]["completed_at"] == ""
    assert "payload" not in rows[0] and "result" not in rows[0]


def test_the_search_applies_to_the_export(viewer):
    match = schedule("test.noop", {"user_id": 42})
    schedule("test.noop", {"user_id": 43})
    _, text = download(viewer, format="jsonl", q="payload.user_id:42")
    assert [row["id"] for row in json_rows(text)] == [str(match.id)]


def test_jsonl_adds_payload_and_result_with_every_secret_masked(viewer):
    task = schedule(
        "test.noop",
        {
            "account": {"name": "acme", "api_key": "key-456", "auth": {"password": "hunter2"}},
            "callback": "https://bob:s3cret-pw@hooks.example.com/in?token=tok-123&page=2",
        },
    )
    Task.objects.filter(id=task.id).update(
        status=TaskStatus.FAILED,
        result={"session_token": "tok-123", "ok": False},
        error="HTTPError: 401 from https://bob:s3cret-pw@api.example.com/x",
    )

    response, text = download(viewer, format="jsonl")

    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"].endswith('.jsonl"')
    assert not [s for s in SECRETS if s in text]
    (row,) = json_rows(text)
    assert set(row) == {*export.COLUMNS, "payload", "result"}
    assert row["payload"]["account"] == {
        "name": "acme",
        "api_key": "***",
        "auth": {"password": "***"},
    }
    assert row["payload"]["callback"] == "https://***@hooks.example.com/in?token=***&page=2"
    assert row["result"] == {"session_token": "***", "ok": False}
    assert row["error"] == "HTTPError: 401 from https://***@api.example.com/x"


def test_a_csv_cell_a_spreadsheet_would_run_as_a_formula_is_defused(viewer):
    formulas = ["=HYPERLINK(1)", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    for n, formula in enumerate(formulas):
        schedule("test.noop", {}, correlation_id=formula, user_id=f"u{n}")
    _, text = download(viewer, format="csv")
    cells = {row["correlation_id"] for row in csv_rows(text)}
    assert cells == {"'" + f for f in formulas}
    assert export.safe_cell(-5) == -5  # numbers are numbers, not text a formula hides in


def test_rows_are_read_in_pages_and_each_is_sent_once_even_with_equal_times(viewer, monkeypatch):
    monkeypatch.setattr(export, "PAGE", 2)
    tasks = [schedule("test.noop", {"n": n}) for n in range(7)]
    same = timezone.now()
    Task.objects.filter(id__in=[t.id for t in tasks[:5]]).update(created_at=same)

    _, text = download(viewer, format="csv")

    sent = [row["id"] for row in csv_rows(text)]
    assert sorted(sent) == sorted(str(t.id) for t in tasks)
    expected = Task.objects.order_by("-created_at", "-id").values_list("id", flat=True)
    assert sent == [str(i) for i in expected]


def test_an_empty_selection_is_the_header_alone(viewer):
    _, text = download(viewer, format="csv", q="nosuchthing")
    assert text == ",".join(export.COLUMNS) + "\r\n"
    _, text = download(viewer, format="jsonl", q="nosuchthing")
    assert text == ""


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"format": "xlsx"}, "format"),
        ({}, "format"),
        ({"format": "csv", "q": "colour:red"}, "q"),
        ({"format": "csv", "status": "done"}, "status"),
        ({"format": "jsonl", "created_after": "yesterday"}, "created_after"),
    ],
)
def test_bad_input_is_a_400_in_json_and_records_nothing(viewer, params, field):
    response = viewer.get("/api/tasks/export", params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert field in response.json()["errors"]
    assert not OperatorAction.objects.filter(action="task.export").exists()


def test_an_export_needs_credentials_and_is_recorded_in_the_audit_log(as_role, viewer):
    assert as_role(None).get("/api/tasks/export", {"format": "csv"}).status_code == 401
    download(viewer, format="jsonl", q="name:noop", status="failed,pending")
    action = OperatorAction.objects.get(action="task.export")
    assert (action.username, action.source) == ("viewer-user", "api")
    assert action.details == {
        "format": "jsonl",
        "filters": {"q": "name:noop", "status": ["failed", "pending"]},
    }
