"""Bad input: 400 with field-level errors, 404 for unknown or malformed ids, 413 for oversize
bodies — and nothing is written on any of them."""

import json
import uuid

import pytest

from taskhub.models import OperatorAction, Task, TaskEvent

pytestmark = pytest.mark.django_db

EMAIL = {"to": "a@example.com", "subject": "Hi", "template": "welcome"}


@pytest.fixture
def nothing_written():
    before = (Task.objects.count(), TaskEvent.objects.count(), OperatorAction.objects.count())
    yield
    after = (Task.objects.count(), TaskEvent.objects.count(), OperatorAction.objects.count())
    assert after == before, "a refused request wrote rows"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"payload": {}}, "task"),
        ({"task": "no.such.task"}, "task"),
        ({"task": "taskhub.ping", "priority": "urgent-ish"}, "priority"),
        ({"task": "taskhub.ping", "priority": 1000}, "priority"),
        ({"task": "taskhub.ping", "priority": True}, "priority"),
        ({"task": "taskhub.ping", "delay": -5}, "delay"),
        ({"task": "taskhub.ping", "max_attempts": 0}, "max_attempts"),
        ({"task": "taskhub.ping", "payload": [1, 2]}, "payload"),
        ({"task": "taskhub.ping", "paylod": {}}, "paylod"),
        ({"task": "http.request", "payload": {"url": "not a url"}}, "payload.url"),
        ({"task": "taskhub.ping", "dedup_key": "x" * 300}, "dedup_key"),
    ],
)
def test_an_invalid_task_request_is_400_naming_the_field(operator, nothing_written, body, field):
    response = operator.post("/api/tasks", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()
    assert response.json()["error"]


def test_malformed_json_is_400(operator, nothing_written):
    response = operator.post("/api/tasks", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]


def test_a_body_that_is_not_an_object_is_400(operator, nothing_written):
    response = operator.post("/api/tasks", [1, 2], format="json")
    assert response.status_code == 400


def test_an_oversize_body_is_413_before_it_is_read(operator, nothing_written, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = json.dumps({"task": "taskhub.ping", "payload": {"blob": "x" * 20_000}})
    response = operator.post("/api/tasks", body, content_type="application/json")
    assert response.status_code == 413
    assert "limit" in response.json()["error"]


def test_a_payload_over_the_payload_limit_is_400_on_the_payload(
    operator, nothing_written, settings
):
    settings.TASKHUB = {**settings.TASKHUB, "MAX_PAYLOAD_BYTES": 100}
    response = operator.post(
        "/api/tasks", {"task": "taskhub.ping", "payload": {"blob": "x" * 200}}, format="json"
    )
    assert response.status_code == 400
    assert "payload" in response.json()["errors"]


def test_a_bulk_request_with_one_bad_item_stores_none(operator, nothing_written):
    body = {"tasks": [{"task": "taskhub.ping"}, {"task": "http.request", "payload": {}}]}
    response = operator.post("/api/tasks/bulk", body, format="json")
    assert response.status_code == 400
    assert any(k.startswith("1.") for k in response.json()["errors"]), response.json()


def test_an_empty_or_oversize_bulk_request_is_400(operator, nothing_written):
    assert operator.post("/api/tasks/bulk", {"tasks": []}, format="json").status_code == 400
    many = {"tasks": [{"task": "taskhub.ping"}] * 1001}
    assert operator.post("/api/tasks/bulk", many, format="json").status_code == 400


@pytest.mark.parametrize(
    "query,field",
    [
        ("status=exploded", "status"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=garbage", "cursor"),
        ("created_after=yesterday", "created_after"),
    ],
)
def test_bad_list_filters_and_pagination_are_400(viewer, query, field):
    response = viewer.get(f"/api/tasks?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"]


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "not-a-uuid", "1234"])
@pytest.mark.parametrize("action", ["retry", "cancel"])
def test_actions_on_unknown_or_malformed_ids_are_404(operator, nothing_written, task_id, action):
    assert operator.post(f"/api/tasks/{task_id}/{action}").status_code == 404


def test_deleting_an_unknown_task_is_404(admin, nothing_written):
    assert admin.delete(f"/api/tasks/{uuid.uuid4()}").status_code == 404


@pytest.mark.parametrize(
    "kind,body,field",
    [
        ("email", {**EMAIL, "to": "not-an-address"}, "to"),
        ("email", {"to": "a@example.com", "subject": "Hi"}, "template"),
        ("email", {**EMAIL, "priority": "whenever"}, "priority"),
        ("email", {**EMAIL, "delay": -1}, "delay"),
        ("image-processing", {"url": "ftp://x/y.png", "transformations": []}, "url"),
        (
            "image-processing",
            {"url": "https://x.org/a.png", "transformations": [{"type": "explode"}]},
            "transformations.0.type",
        ),
        (
            "image-processing",
            {"url": "https://x.org/a.png", "transformations": [], "outputFormat": "bmp"},
            "outputFormat",
        ),
        (
            "image-processing",
            {"url": "https://x.org/a.png", "transformations": [], "quality": 101},
            "quality",
        ),
        (
            "blockchain-event",
            {"contractAddress": "0x12", "eventName": "T", "parameters": {}},
            "contractAddress",
        ),
        ("blockchain-event", {"contractAddress": "0x" + "ab" * 20, "eventName": "T"}, "parameters"),
        ("notification", {"userId": "u1", "type": "info"}, "message"),
    ],
)
def test_task_queue_bodies_are_validated_by_their_schema(
    operator, nothing_written, kind, body, field
):
    response = operator.post(f"/api/task-queue/{kind}", body, format="json")
    assert response.status_code == 400
    data = response.json()
    assert data["success"] is False
    assert field in data["errors"], data


def test_task_queue_malformed_json_is_400(operator, nothing_written):
    response = operator.post("/api/task-queue/email", "{", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["success"] is False


@pytest.mark.parametrize(
    "method,url",
    [
        ("get", "/api/task-queue/stats?queueName=nope"),
        ("get", "/api/task-queue/nope/failed"),
        ("post", "/api/task-queue/nope/pause"),
        ("post", "/api/task-queue/nope/resume"),
        ("post", "/api/task-queue/nope/clear"),
        ("post", f"/api/task-queue/default/retry/{uuid.uuid4()}"),
        ("post", "/api/task-queue/default/retry/garbage"),
        ("post", f"/api/task-queue/default/remove/{uuid.uuid4()}"),
    ],
)
def test_task_queue_unknown_queues_and_jobs_are_404(admin, nothing_written, method, url):
    response = getattr(admin, method)(url)
    assert response.status_code == 404
    assert response.json()["success"] is False


def test_task_queue_status_of_unknown_job_is_404_not_found(viewer):
    for job in (str(uuid.uuid4()), "garbage"):
        response = viewer.get(f"/api/task-queue/status/default/{job}")
        assert response.status_code == 404
        assert response.json()["found"] is False


@pytest.mark.parametrize(
    "query,field",
    [
        ("start=-1", "start"),
        ("start=5&end=2", "end"),
        ("start=0&end=5000", "end"),
        ("start=x", "start"),
    ],
)
def test_task_queue_failed_out_of_range_pages_are_400(viewer, query, field):
    response = viewer.get(f"/api/task-queue/default/failed?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"]


@pytest.mark.parametrize(
    "query,field",
    [
        ("from=garbage", "from"),
        ("from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z", "from"),
        ("from=2000-01-01T00:00:00Z&to=2030-01-01T00:00:00Z", "from"),
        ("to=1e999", "to"),
    ],
)
@pytest.mark.parametrize("endpoint", ["/api/metrics", "/api/failures"])
def test_bad_time_ranges_are_400(viewer, endpoint, query, field):
    response = viewer.get(f"{endpoint}?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()
