"""/healthz answers anyone (load balancers carry no credentials) but names only each check's
status: the text of a database or Redis error (hosts, users, paths) is for authenticated callers."""

import redis

from taskhub.console import health

REDIS_ERROR = "Error 111 connecting to redis-7.internal.example:6379 as user ops-admin"
DATABASE_ERROR = 'connection to server at "db.internal.example" failed: role "taskhub_rw"'


class DeadRedis:
    def ping(self):
        raise redis.ConnectionError(REDIS_ERROR)


def failing_database():
    return {"name": "database", "status": "down", "error": DATABASE_ERROR}


def test_an_anonymous_caller_sees_statuses_but_no_error_text(client, db, monkeypatch):
    monkeypatch.setattr(health, "get_redis", lambda: DeadRedis())

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.content.decode()
    assert "redis-7.internal.example" not in body and "ops-admin" not in body
    checks = {c["name"]: c for c in response.json()["checks"]}
    assert checks["redis"] == {"name": "redis", "status": "down"}


def test_a_database_error_is_not_shown_to_an_anonymous_caller(client, db, monkeypatch):
    monkeypatch.setattr(health, "check_database", failing_database)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert "db.internal.example" not in response.content.decode()
    assert {"name": "database", "status": "down"} in response.json()["checks"]


def test_an_authenticated_caller_gets_the_details(viewer, monkeypatch):
    monkeypatch.setattr(health, "get_redis", lambda: DeadRedis())

    response = viewer.get("/healthz")

    assert response.status_code == 503
    checks = {c["name"]: c for c in response.json()["checks"]}
    assert checks["redis"]["error"] == REDIS_ERROR


def test_a_session_login_also_gets_the_details(admin_client, monkeypatch):
    monkeypatch.setattr(health, "get_redis", lambda: DeadRedis())

    checks = {c["name"]: c for c in admin_client.get("/healthz").json()["checks"]}

    assert checks["redis"]["error"] == REDIS_ERROR


def test_a_bad_token_is_anonymous_not_an_error(client, db, monkeypatch):
    monkeypatch.setattr(health, "get_redis", lambda: DeadRedis())

    response = client.get("/healthz", HTTP_AUTHORIZATION="Token not-a-real-token")

    assert response.status_code == 503  # the probe still answers; no 401, no details
    assert "redis-7.internal.example" not in response.content.decode()
