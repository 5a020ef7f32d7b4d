"""Roles are Django permissions any group may hold; a group's name grants nothing; the ready-made
groups come from `manage.py taskhub groups`."""

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from taskhub.console.roles import GROUPS, ROLES, has_role, role_of

pytestmark = pytest.mark.django_db


def _permission(codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label="taskhub", codename=codename)


def _member_of(group: Group, username: str) -> tuple[User, APIClient, Client]:
    user = User.objects.create_user(username, is_staff=True)
    user.groups.add(group)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    browser = Client()
    browser.force_login(user)
    return user, api, browser


def test_a_custom_named_group_with_the_operator_permission_gets_the_operator_role():
    # Given a group of the host's own naming holding only taskhub's operator permission
    desk = Group.objects.create(name="Support desk")
    desk.permissions.add(_permission("role_operator"))
    user, api, browser = _member_of(desk, "sam")
    # Then its members steer (and read: a role includes the ones below it), but cannot destroy
    assert role_of(user) == "operator"
    assert api.get("/api/tasks").status_code == 200
    assert api.post("/api/task-queue/default/pause").status_code == 200
    refused = api.post("/api/task-queue/default/clear")
    assert refused.status_code == 403 and "admin" in refused.json()["error"]
    # and the console admits them, with the operator's actions
    assert browser.get("/admin/taskhub/task/").status_code == 200
    assert browser.post("/admin/taskhub/queuestate/default/clear/").status_code == 403


def test_a_group_named_admin_without_the_permissions_grants_nothing():
    # Given the host's own "admin" group (a name taskhub once matched), without taskhub's
    # permissions
    host_admins = Group.objects.create(name="admin")
    user, api, browser = _member_of(host_admins, "hank")
    # Then its members have no role: 403 on the API (authenticated, so not 401), none in the console
    assert role_of(user) is None
    response = api.get("/api/tasks")
    assert response.status_code == 403 and "viewer" in response.json()["error"]
    assert api.post("/api/task-queue/default/clear").status_code == 403
    assert browser.get("/admin/taskhub/task/").status_code == 403
    assert browser.get("/admin/taskhub/queuestate/").status_code == 403


def test_a_permission_given_to_a_user_directly_counts_too():
    user = User.objects.create_user("vic")
    user.user_permissions.add(_permission("role_viewer"))
    user = User.objects.get(pk=user.pk)  # a fresh object: Django caches permissions per object
    assert role_of(user) == "viewer"
    assert has_role(user, "viewer") and not has_role(user, "operator")


def test_a_superuser_is_an_admin_and_an_inactive_user_nothing():
    boss = User.objects.create_superuser("boss")
    assert role_of(boss) == "admin"
    boss.is_active = False
    assert role_of(boss) is None


def test_the_groups_command_creates_the_three_groups_and_is_idempotent(capsys):
    # When the command runs twice
    call_command("taskhub", "groups")
    first = capsys.readouterr().out
    call_command("taskhub", "groups")
    second = capsys.readouterr().out
    # Then the three groups exist once each, each with its role's permissions and those below
    assert first.count("created") == 3 and second.count("already there") == 3, (first, second)
    assert Group.objects.filter(name__in=GROUPS.values()).count() == 3
    for index, role in enumerate(ROLES):
        held = set(
            Group.objects.get(name=GROUPS[role]).permissions.values_list("codename", flat=True)
        )
        assert held == {f"role_{r}" for r in ROLES[: index + 1]}, role


def test_the_groups_command_restores_a_group_and_keeps_its_members_and_other_permissions():
    call_command("taskhub", "groups")
    viewers = Group.objects.get(name=GROUPS["viewer"])
    member = User.objects.create_user("val")
    member.groups.add(viewers)
    unrelated = Permission.objects.get(codename="view_user")
    viewers.permissions.add(_permission("role_admin"), unrelated)  # someone widened it
    call_command("taskhub", "groups")
    codenames = set(viewers.permissions.values_list("codename", flat=True))
    assert codenames == {"role_viewer", "view_user"}
    assert role_of(User.objects.get(pk=member.pk)) == "viewer"


def test_createuser_puts_the_user_in_the_ready_made_group_of_its_role(capsys):
    call_command("taskhub", "createuser", "olga", "--role", "operator")
    call_command("taskhub", "createuser", "olga", "--role", "admin")
    user = User.objects.get(username="olga")
    assert list(user.groups.values_list("name", flat=True)) == [GROUPS["admin"]]
    assert role_of(user) == "admin"
