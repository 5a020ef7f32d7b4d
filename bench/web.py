"""The web side the API and scale measures talk to: uvicorn serving config.asgi (ASGI, as
deployed), a superuser with an API token and an admin session, and detection of which
endpoints exist yet (the REST API, metrics and dashboard are being built)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from .core import percentile
from .procs import Proc, start_uvicorn

USERNAME = "bench-admin"
#: Where the queues dashboard may live; the first that answers 200 is measured.
DASHBOARD_CANDIDATES = (
    "/admin/taskhub/queuestate/",  # the Queues page
    "/admin/taskhub/dashboard/",
    "/admin/dashboard/",
    "/admin/queues/",
    "/dashboard/",
    "/taskhub/dashboard/",
)


@dataclass
class Web:
    proc: Proc
    base: str
    token: str
    session: str
    available: dict[str, int] = field(default_factory=dict)  # path → status code

    def client(self, admin: bool = False, **kwargs) -> httpx.Client:
        headers = {} if admin else {"Authorization": f"Token {self.token}"}
        cookies = {"sessionid": self.session} if admin else {}
        return httpx.Client(
            base_url=self.base, headers=headers, cookies=cookies, timeout=30, **kwargs
        )

    def probe(self, path: str, admin: bool = False) -> int:
        with self.client(admin) as client:
            code = client.get(path).status_code
        self.available[path] = code
        return code

    def stop(self) -> None:
        self.proc.stop(timeout=15)


def credentials() -> tuple[str, str]:
    """An API token and an admin session for a superuser (a superuser holds every role)."""
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore
    from rest_framework.authtoken.models import Token

    user, _ = get_user_model().objects.get_or_create(
        username=USERNAME, defaults={"is_staff": True, "is_superuser": True}
    )
    token, _ = Token.objects.get_or_create(user=user)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return token.key, session.session_key


def start(workers: int = 1) -> Web:
    token, session = credentials()
    proc, base = start_uvicorn(workers)
    return Web(proc=proc, base=base, token=token, session=session)


def exists(code: int) -> bool:
    return code not in (404, 405, 501)


def timed_gets(
    client: httpx.Client, path: str, count: int, warm: int = 2, gap: float = 0.0
) -> list[float]:
    """Sequential GETs, ``gap`` seconds apart; latencies in ms. A non-2xx answer aborts (the
    figure would be a lie)."""
    samples = []
    for i in range(warm + count):
        if gap and i:
            time.sleep(gap)
        start = time.perf_counter()
        response = client.get(path)
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code >= 300:
            raise RuntimeError(f"GET {path} answered {response.status_code}")
        if i >= warm:
            samples.append(elapsed)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50": percentile(samples, 50),
        "p99": percentile(samples, 99),
        "max": max(samples) if samples else float("nan"),
    }
