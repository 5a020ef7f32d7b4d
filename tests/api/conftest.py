import pytest
from rest_framework.test import APIClient

from taskhub.console.roles import create_user


@pytest.fixture
def tokens(db):
    """An API token for each role."""
    return {role: create_user(f"{role}-user", role)[2] for role in ("viewer", "operator", "admin")}


@pytest.fixture
def as_role(tokens):
    """A client authenticated with the token of a role (``None`` → anonymous)."""

    def client(role: str | None) -> APIClient:
        api = APIClient()
        if role:
            api.credentials(HTTP_AUTHORIZATION=f"Token {tokens[role]}")
        return api

    return client


@pytest.fixture
def viewer(as_role):
    return as_role("viewer")


@pytest.fixture
def operator(as_role):
    return as_role("operator")


@pytest.fixture
def admin(as_role):
    return as_role("admin")
