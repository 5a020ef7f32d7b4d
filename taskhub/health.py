"""Liveness of the parts the engine depends on."""

from __future__ import annotations

import redis
from django.db import DatabaseError, connection
from django.http import JsonResponse

from .broker import get_redis


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"name": "database", "status": "ok"}
    except DatabaseError as exc:
        return {"name": "database", "status": "down", "error": str(exc)}


def check_redis() -> dict:
    try:
        get_redis().ping()
        return {"name": "redis", "status": "ok"}
    except (redis.RedisError, OSError) as exc:
        return {"name": "redis", "status": "down", "error": str(exc)}


def healthz(request):
    checks = [check_database(), check_redis()]
    status = "down" if any(c["status"] == "down" for c in checks) else "ok"
    return JsonResponse(
        {"status": status, "checks": checks}, status=503 if status == "down" else 200
    )
