"""`taskhub createuser` on an existing user: the token is kept unless --rotate-token replaces
it, and the output says which happened."""

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def createuser(capsys, *args) -> dict[str, str]:
    call_command("taskhub", "createuser", "ops-bot", "--role", "operator", *args)
    printed = capsys.readouterr().out
    return dict(line.split(": ", 1) for line in printed.splitlines() if ": " in line)


def status_with(token: str) -> int:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return api.get("/api/tasks").status_code


def test_rotate_token_replaces_the_token_and_the_old_one_stops_working(capsys):
    first = createuser(capsys)["token"]

    again = createuser(capsys, "--rotate-token")

    rotated = again["token"].split()[0]
    assert rotated != first
    assert "rotated" in again["token"] and "no longer works" in again["token"]
    assert status_with(first) == 401
    assert status_with(rotated) == 200


def test_without_rotate_token_an_existing_users_token_is_kept_and_the_output_says_so(capsys):
    first = createuser(capsys)["token"]

    again = createuser(capsys)

    assert again["token"].split()[0] == first
    assert "kept" in again["token"] and "--rotate-token" in again["token"]
    assert status_with(first) == 200


def test_a_new_user_gets_a_new_token_with_or_without_the_flag(capsys):
    lines = createuser(capsys, "--rotate-token")
    assert status_with(lines["token"].split()[0]) == 200
