"""Operator roles as Django groups: viewer (read), operator (also steer), admin (also destroy).

Each role includes the ones below it. A superuser is an admin. The groups are created after
every ``migrate`` (and on demand), so a fresh database already has them.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group
from django.db import transaction
from rest_framework.authtoken.models import Token

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
#: Roles from least to most powerful; a role grants everything to its left.
ROLES = (VIEWER, OPERATOR, ADMIN)


def ensure_role_groups(**kwargs) -> None:
    """Create the role groups if missing (a post_migrate receiver, also called directly)."""
    for role in ROLES:
        Group.objects.get_or_create(name=role)


def role_of(user) -> str | None:
    """The most powerful role the user has, or None."""
    if user is None or isinstance(user, AnonymousUser) or not user.is_active:
        return None
    if user.is_superuser:
        return ADMIN
    names = getattr(user, "_taskhub_groups", None)
    if names is None:
        names = set(user.groups.values_list("name", flat=True))
        user._taskhub_groups = names  # one query per request, not one per check
    held = [r for r in ROLES if r in names]
    return held[-1] if held else None


def has_role(user, role: str) -> bool:
    """True if the user's role is ``role`` or a more powerful one."""
    held = role_of(user)
    return held is not None and ROLES.index(held) >= ROLES.index(role)


def create_user(
    username: str, role: str, *, password: str | None = None, email: str = ""
) -> tuple[object, str, str]:
    """Create (or update the role of) a console user; return (user, password, API token).

    The user gets staff status so the admin console admits them; what they may do there and
    on the API follows from the role alone.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    ensure_role_groups()
    password = password or secrets.token_urlsafe(12)
    with transaction.atomic():
        user, _ = get_user_model().objects.get_or_create(username=username)
        user.email = email or user.email
        user.is_staff = True
        user.set_password(password)
        user.save()
        user.groups.remove(*Group.objects.filter(name__in=ROLES))
        user.groups.add(Group.objects.get(name=role))
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
