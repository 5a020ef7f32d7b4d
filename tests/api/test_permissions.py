"""Every endpoint × every role: anonymous → 401, too weak a role → 403, enough → allowed."""

import uuid

import pytest

from taskhub.engine.enqueue import schedule
from taskhub.models import Task, TaskStatus
from tests.api.role_matrix import assert_answers_by_role, by_role

pytestmark = pytest.mark.django_db


def failed_task(queue_task="taskhub.ping") -> Task:
    task = schedule(queue_task, {})
    Task.objects.filter(id=task.id).update(status=TaskStatus.FAILED, attempt=1, error="boom")
    return task


def endpoints():
    """(method, url factory, body, least role). URL factories make fresh rows per call."""
    ping = lambda: schedule("taskhub.ping", {}).id  # noqa: E731
    email = {"to": "a@example.com", "subject": "Hi", "template": "welcome"}
    return [
        ("get", lambda: "/api/tasks", None, "viewer"),
        ("post", lambda: "/api/tasks", {"task": "taskhub.ping"}, "operator"),
        ("post", lambda: "/api/tasks/bulk", {"tasks": [{"task": "taskhub.ping"}]}, "operator"),
        ("get", lambda: f"/api/tasks/{ping()}", None, "viewer"),
        ("post", lambda: f"/api/tasks/{failed_task().id}/retry", None, "operator"),
        ("post", lambda: f"/api/tasks/{ping()}/cancel", None, "operator"),
        ("delete", lambda: f"/api/tasks/{failed_task().id}", None, "admin"),
        ("post", lambda: "/api/tasks/actions/retry", {"filter": {"queue": "default"}}, "operator"),
        ("post", lambda: "/api/tasks/actions/cancel", {"filter": {"queue": "default"}}, "operator"),
        ("post", lambda: "/api/tasks/actions/delete", {"filter": {"queue": "default"}}, "admin"),
        ("get", lambda: "/api/metrics", None, "viewer"),
        ("get", lambda: "/api/failures", None, "viewer"),
        ("get", lambda: "/api/task-queue/health", None, "viewer"),
        ("get", lambda: "/api/task-queue/stats", None, "viewer"),
        ("get", lambda: f"/api/task-queue/status/default/{ping()}", None, "viewer"),
        ("get", lambda: "/api/task-queue/default/failed", None, "viewer"),
        ("post", lambda: "/api/task-queue/email", email, "operator"),
        (
            "post",
            lambda: "/api/task-queue/image-processing",
            {"url": "https://example.com/a.png", "transformations": []},
            "operator",
        ),
        (
            "post",
            lambda: "/api/task-queue/blockchain-event",
            {"contractAddress": "0x" + "ab" * 20, "eventName": "Transfer", "parameters": {}},
            "operator",
        ),
        (
            "post",
            lambda: "/api/task-queue/notification",
            {"userId": "u1", "type": "info", "message": "hello"},
            "operator",
        ),
        ("post", lambda: "/api/task-queue/default/pause", None, "operator"),
        ("post", lambda: "/api/task-queue/default/resume", None, "operator"),
        ("post", lambda: "/api/task-queue/default/clear", None, "admin"),
        ("post", lambda: f"/api/task-queue/default/retry/{failed_task().id}", None, "operator"),
        ("post", lambda: f"/api/task-queue/default/remove/{failed_task().id}", None, "admin"),
        ("get", lambda: "/api/schema/", None, "viewer"),
        ("get", lambda: "/metrics", None, "viewer"),
    ]


@by_role(endpoints())
def test_each_endpoint_answers_by_role(as_role, method, url, body, least, role):
    # Given a caller with a role (or none) and an endpoint that needs `least`
    client = as_role(role)
    # When it calls the endpoint
    response = getattr(client, method)(url(), body, format="json")
    # Then anonymous callers get 401 (asked for a token), weaker roles 403, the rest are served
    assert_answers_by_role(response, role, least)
    if role is None:
        assert response["WWW-Authenticate"].startswith("Token")


def test_a_wrong_token_is_401_not_403(as_role):
    client = as_role(None)
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.get("/api/tasks")
    assert response.status_code == 401


def test_a_logged_in_browser_session_is_accepted(client, db):
    from taskhub.console.roles import create_user

    user, _, _ = create_user("sessions", "viewer")
    client.force_login(user)
    assert client.get("/api/tasks").status_code == 200
    # a session is held to CSRF on writes, unlike a token
    assert client.post("/api/tasks", {"task": "taskhub.ping"}).status_code == 403


def test_a_user_without_any_role_is_refused(db):
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    user = User.objects.create_user("nobody")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert api.get("/api/tasks").status_code == 403


def test_metrics_can_be_made_public(as_role, settings):
    settings.TASKHUB = {**settings.TASKHUB, "METRICS_PUBLIC": True}
    assert as_role(None).get("/metrics").status_code == 200


def test_healthz_needs_no_credentials(as_role):
    assert as_role(None).get("/healthz").status_code in (200, 503)


def test_swagger_ui_sends_an_anonymous_browser_to_the_login_page(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_unknown_ids_are_404_for_every_role(as_role):
    for role in ("viewer", "admin"):
        client = as_role(role)
        assert client.get(f"/api/tasks/{uuid.uuid4()}").status_code == 404
        assert client.get("/api/tasks/not-a-uuid").status_code == 404
