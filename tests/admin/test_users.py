"""Console users: createuser prints a working token; the embedded default gets a first admin."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from taskhub.console.roles import create_first_admin, role_of

pytestmark = pytest.mark.django_db


def test_createuser_prints_a_token_that_works_with_the_role(capsys):
    call_command("taskhub", "createuser", "ops-bot", "--role", "operator")
    printed = capsys.readouterr().out
    lines = dict(line.split(": ", 1) for line in printed.splitlines() if ": " in line)
    token = lines.get("token")
    assert token and lines["role"] == "operator", printed
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.post("/api/task-queue/default/pause").status_code == 200
    assert api.post("/api/task-queue/default/clear").status_code == 403


def test_createuser_rejects_an_unknown_role():
    with pytest.raises(CommandError):
        call_command("taskhub", "createuser", "x", "--role", "overlord")


def test_the_first_admin_is_created_once():
    name, password, token = create_first_admin()
    assert name == "admin" and password and token
    from django.contrib.auth.models import User

    assert role_of(User.objects.get(username="admin")) == "admin"
    assert create_first_admin() is None
