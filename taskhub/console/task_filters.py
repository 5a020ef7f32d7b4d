"""Which tasks a filter selects: one function from the task list's validated filter (the keys
of ``api.serializers.TaskFilterSerializer``, the search ``q`` among them) to a queryset, shared
by ``GET /api/tasks``, its export and the bulk actions of the API and the command line, so a
key added to the filter reaches all of them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet

from ..models import Task
from . import search


def apply_lookups(rows: QuerySet, params: Mapping[str, Any], lookups: dict[str, str]) -> QuerySet:
    """``rows`` narrowed by each filter parameter given a value, through its ORM lookup
    (``status`` a set of statuses). Shared by the task list and the workflow run list."""
    for param, lookup in lookups.items():
        if params.get(param) not in (None, "", set()):
            value = params[param]
            rows = rows.filter(**{lookup: list(value) if param == "status" else value})
    return rows


def filtered_tasks(params: Mapping[str, Any]) -> QuerySet[Task]:
    """The tasks matching ``params`` (validated filter values; an empty one filters nothing)."""
    lookups = {
        "status": "status__in",
        "queue": "queue",
        "task": "name",
        "type": "task_type",
        "correlation_id": "correlation_id",
        "user_id": "user_id",
        "created_after": "created_at__gte",
        "created_before": "created_at__lt",
    }
    tasks = apply_lookups(Task.objects.all(), params, lookups)
    if params.get("q"):
        tasks = search.filter_tasks(tasks, params["q"])  # the serializer checked that it parses
    return tasks


def selects_everything(tasks: QuerySet) -> bool:
    """True when a queryset has no condition at all: a bulk action on it would touch every task.

    Asked of the query, not of the filter's keys, so that a key added to the filter later
    counts as a condition without a change here."""
    return not tasks.query.where


def describe(params: Mapping[str, Any]) -> dict[str, Any]:
    """The filter as the audit log keeps it: the keys given a value, as JSON values."""
    described: dict[str, Any] = {}
    for name, value in params.items():
        if value in (None, "") or (isinstance(value, set | frozenset | list | tuple) and not value):
            continue
        if isinstance(value, set | frozenset | list | tuple):
            value = sorted(str(v) for v in value)
        elif isinstance(value, dt.datetime | dt.date):
            value = value.isoformat()
        described[name] = value
    return described
