import pytest
from django.test import Client

from taskhub.console.roles import create_user


@pytest.fixture
def login(db):
    """A browser-like client logged in with a role."""

    def client(role: str) -> Client:
        user, _, _ = create_user(f"{role}-person", role)
        browser = Client()
        browser.force_login(user)
        return browser

    return client
