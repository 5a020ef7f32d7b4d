"""Bulk actions too large for a web request, run as a task (``taskhub.bulk_action``).

Above ``BULK_ACTION_INLINE_MAX`` eligible rows (or when the caller asks), the API and the admin
count, check what the operator confirmed, then schedule one ``taskhub.bulk_action`` task instead
of acting inside the request; the answer names the task, whose progress and result show how far
the action went. The task carries the filter as the surface received it, the time of the count
(``as_of``) and the count the operator confirmed, and calls :func:`taskhub.console.bulk.run`
with them: rows created after the count are left alone, and a count that changed since is
refused with nothing changed, exactly as in a request.

The task is tried once (``max_attempts=1``): an action stopped half-way keeps the batches it
committed and its audit record says ``interrupted``; running it again by itself could act on rows
the operator never confirmed (retry a task that failed again meanwhile). The operator reads the
failed task and decides. It is internal (``external=False``): nobody schedules it through the
API, the CLI or the admin's task forms, whose role checks it would bypass.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime

from ..conf import taskhub_settings
from ..engine.enqueue import schedule
from ..errors import PermanentError
from ..models import Task
from . import bulk
from .api.serializers import BulkTaskFilterSerializer
from .roles import has_role
from .task_filters import filtered_tasks, selects_everything

#: The built-in task that runs a bulk action (declared in taskhub/builtins/bulk_action.py).
TASK = bulk.BULK_ACTION_TASK

#: Where the filter comes from: the API's filter object, or the admin task list's query string.
SOURCES = ("api", "admin")


class BulkJobRefused(PermanentError):
    """The scheduled action cannot run as asked (its author lost the role, the filter no longer
    reads); nothing was changed."""


def in_background(counted: bulk.BulkCount, *, forced: bool = False) -> bool:
    """Whether an action with this count runs as a task rather than in the request."""
    return forced or counted.eligible > int(taskhub_settings.BULK_ACTION_INLINE_MAX)


def schedule_action(
    action: str,
    *,
    user: Any,
    source: str,
    filters: dict[str, Any],
    everything: bool,
    counted: bulk.BulkCount,
    expected_count: int | None,
    dedup: bool = False,
) -> Task:
    """Schedule ``action`` on what ``filters`` selects (the filter as ``source`` received it:
    the API's JSON object, or the admin list's query parameters), counted by ``counted``.

    ``expected_count``: the count the operator confirmed, checked again when the task starts.
    ``dedup``: the same confirmation posted twice (the admin's form: its ``as_of`` is the
    count's) schedules one task.
    """
    bulk._check(action)
    if source not in SOURCES:
        raise ValueError(f"unknown bulk source {source!r}")
    payload = {
        "action": action,
        "source": source,
        "filter": filters,
        "all": everything,
        "as_of": counted.as_of.isoformat(),
        "matched": counted.matched,
        "eligible": counted.eligible,
        "expected_count": expected_count,
        "user": {"id": user.pk, "username": user.get_username()},
    }
    dedup_key = None
    if dedup:
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode())
        dedup_key = f"{TASK}:{digest.hexdigest()}"
    return schedule(TASK, payload, user_id=user.pk, dedup_key=dedup_key)


#: How the admin's task list reads its query string for a user: ``admin.matching_tasks``, passed
#: in by the task (the admin imports this module, so this module does not import the admin).
AdminTasks = Callable[[Any, dict[str, str]], QuerySet[Task]]


def run_scheduled(
    payload: dict[str, Any], *, admin_tasks: AdminTasks, progress: bulk.Progress | None = None
) -> dict:
    """The task's body: the action as scheduled, its :class:`~bulk.BulkResult` as a dict."""
    action = payload["action"]
    bulk._check(action)
    user = _author(payload["user"], action)
    as_of = _as_of(payload["as_of"])
    tasks, filters = _matching(payload, user, admin_tasks)
    if selects_everything(tasks) and not payload.get("all"):
        raise BulkJobRefused("the filter matches every task and the action did not say all")
    result = bulk.run(
        action,
        tasks,
        user=user,
        source=payload["source"],
        filters={**filters, **({"all": True} if payload.get("all") else {})},
        expected_count=payload.get("expected_count"),
        as_of=as_of,
        progress=progress,
    )
    return result.as_dict()


def _author(who: dict[str, Any], action: str) -> Any:
    """The operator who asked, as they are now: one who lost the role since acts no more."""
    user = get_user_model().objects.filter(pk=who.get("id"), is_active=True).first()
    if user is None:
        raise BulkJobRefused(f"user {who.get('username')!r} no longer exists or is inactive")
    if not has_role(user, bulk.ACTIONS[action]):
        raise BulkJobRefused(f"user {user.get_username()!r} may no longer {action} tasks")
    return user


def _as_of(value: str) -> dt.datetime:
    as_of = parse_datetime(value or "")
    if as_of is None:
        raise BulkJobRefused(f"as_of {value!r} is not a date and time")
    return as_of


def _matching(
    payload: dict[str, Any], user: Any, admin_tasks: AdminTasks
) -> tuple[QuerySet[Task], dict[str, Any]]:
    """The rows the filter selects, read as the surface that received it reads it."""
    if payload["source"] == "admin":
        params = dict(payload["filter"])
        return admin_tasks(user, params), params
    body = BulkTaskFilterSerializer(data=payload["filter"])
    if not body.is_valid():
        raise BulkJobRefused(f"the filter no longer reads: {body.errors}")
    return filtered_tasks(body.validated_data), dict(body.validated_data)
