"""Every endpoint × every role, one way for every API test module: anonymous → 401, too weak a
role → 403 naming the role needed, enough → served (as the module defines "served")."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

ROLES = [None, "viewer", "operator", "admin"]
RANK = {None: -1, "viewer": 0, "operator": 1, "admin": 2}


def by_role(endpoints: Iterable[tuple]) -> pytest.MarkDecorator:
    """Parametrize a test over (method, url, body, least) × every role."""
    cases = [(m, u, b, least, role) for (m, u, b, least) in endpoints for role in ROLES]
    ids = [
        f"{i // len(ROLES)}-{m}-needs-{least}-as-{role}"
        for i, (m, u, b, least, role) in enumerate(cases)
    ]
    return pytest.mark.parametrize("method,url,body,least,role", cases, ids=ids)


def assert_answers_by_role(
    response,
    role: str | None,
    least: str,
    served: Callable[[int], bool] = lambda status: status in (200, 201, 204),
) -> None:
    if role is None:
        assert response.status_code == 401
    elif RANK[role] < RANK[least]:
        assert response.status_code == 403
        assert least in response.json()["error"]
    else:
        assert served(response.status_code), response.content
