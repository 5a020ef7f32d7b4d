"""Recording operator actions (the audit log) around the service calls that perform them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..models import OperatorAction


def actor_name(user) -> str:
    """How an action's author is named in task events (``by``)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    return user.get_username()


def record(
    user, action: str, *, source: str, target_type: str = "", target_id: Any = "", **details
) -> OperatorAction:
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    return OperatorAction.objects.create(
        at=timezone.now(),
        user=user if authenticated else None,
        username=actor_name(user),
        source=source,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        details=details,
    )


@contextmanager
def audited(
    user,
    action: str,
    *,
    source: str,
    target_type: str = "",
    target_id: Any = "",
    atomic: bool = True,
    **details,
) -> Iterator[dict]:
    """Run the block in a transaction and record the action if it succeeds.

    The block may add details (counts, resulting ids) to the yielded dict, and set its
    ``target_id`` when the target is only known afterwards (a created task). ``atomic=False`` is for
    actions that commit in batches of their own (clearing a queue): the row is written after.
    """
    extra: dict = dict(details)
    with transaction.atomic() if atomic else nullcontext():
        yield extra
        target_id = extra.pop("target_id", target_id)
        record(user, action, source=source, target_type=target_type, target_id=target_id, **extra)
