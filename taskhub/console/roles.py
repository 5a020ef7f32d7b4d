"""Operator roles as Django permissions: viewer (read), operator (also steer), admin (also destroy).

Each role is a permission of taskhub's — ``taskhub.role_viewer``, ``taskhub.role_operator``,
``taskhub.role_admin`` (declared on the Task model, ``taskhub.models.ROLE_PERMISSIONS``) — that
any group or user may hold, checked through Django's auth backends (``user.has_perm``). A role
includes the ones below it, so ``role_operator`` alone also reads. A superuser is an admin.

Group names mean nothing to taskhub: a host's group called ``admin`` grants no role. For those
who want them, ``manage.py taskhub groups`` creates three ready-made groups (``GROUPS``) holding
each role's permissions; ``taskhub createuser --role`` puts a user in one of them.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from rest_framework.authtoken.models import Token

from ..models import ROLE_PERMISSIONS

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
#: Roles from least to most powerful; a role grants everything to its left.
ROLES = (VIEWER, OPERATOR, ADMIN)

_APP = "taskhub"
#: The permission codename behind each role (``user.has_perm(f"taskhub.{codename}")``).
CODENAMES = dict(zip(ROLES, (codename for codename, _ in ROLE_PERMISSIONS), strict=True))
#: The ready-made group of each role (``manage.py taskhub groups``). Prefixed, so that none of
#: them is a group the host already has under a plain name.
GROUPS = {VIEWER: "taskhub viewer", OPERATOR: "taskhub operator", ADMIN: "taskhub admin"}


def permission_name(role: str) -> str:
    """The role's permission as ``has_perm`` takes it, e.g. ``taskhub.role_operator``."""
    return f"{_APP}.{CODENAMES[role]}"


def role_of(user) -> str | None:
    """The most powerful role the user has, or None."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    # Django's ModelBackend caches a user's permissions on the user object: one pair of queries
    # per request, however many checks.
    for role in reversed(ROLES):
        if user.has_perm(permission_name(role)):
            return role
    return None


def has_role(user, role: str) -> bool:
    """True if the user's role is ``role`` or a more powerful one."""
    held = role_of(user)
    return held is not None and ROLES.index(held) >= ROLES.index(role)


def _role_permissions() -> dict[str, Permission]:
    found = {
        p.codename: p
        for p in Permission.objects.filter(
            content_type__app_label=_APP, codename__in=CODENAMES.values()
        )
    }
    missing = sorted(set(CODENAMES.values()) - set(found))
    if missing:
        # Django creates permissions after each migrate; before that there is nothing to grant.
        raise LookupError(
            f"taskhub's role permissions are missing ({', '.join(missing)}): run manage.py migrate"
        )
    return {role: found[codename] for role, codename in CODENAMES.items()}


def ensure_role_groups() -> dict[str, tuple[Group, bool]]:
    """Create the ready-made groups if missing and give each its role's permissions (the role's
    and those below it, so a group's admin page lists the whole role). Idempotent: a group that
    exists keeps its members and other permissions; its taskhub role permissions are set back to
    its role's. Returns {role: (group, created)}."""
    permissions = _role_permissions()
    result = {}
    with transaction.atomic():
        for index, role in enumerate(ROLES):
            group, created = Group.objects.get_or_create(name=GROUPS[role])
            wanted = [permissions[r] for r in ROLES[: index + 1]]
            group.permissions.remove(*(p for p in permissions.values() if p not in wanted))
            group.permissions.add(*wanted)
            result[role] = (group, created)
    return result


def create_user(
    username: str, role: str, *, password: str | None = None, email: str = ""
) -> tuple[object, str, str]:
    """Create (or update the role of) a console user; return (user, password, API token).

    The user gets staff status so the admin console admits them, and joins the role's
    ready-made group (leaving the others); what they may do there and on the API follows from
    the role alone.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    groups = ensure_role_groups()
    password = password or secrets.token_urlsafe(12)
    with transaction.atomic():
        user, _ = get_user_model().objects.get_or_create(username=username)
        user.email = email or user.email
        user.is_staff = True
        user.set_password(password)
        user.save()
        user.groups.remove(*(group for group, _ in groups.values()))
        user.groups.add(groups[role][0])
        token, _ = Token.objects.get_or_create(user=user)
    return user, password, token.key


def rotate_token(user) -> str:
    """Replace the user's API token; the old one stops working at once. Returns the new key."""
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user).key


def create_first_admin(username: str = "admin") -> tuple[str, str, str] | None:
    """On a database with no users at all, create an admin; return (name, password, token).

    Returns None when any user exists, so the credentials are made, and shown, only once.
    """
    if get_user_model().objects.exists():
        return None
    user, password, token = create_user(username, ADMIN)
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    return username, password, token
