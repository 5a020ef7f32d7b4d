"""Parent / child: a handler spawns children with ``ctx.spawn``; they are inserted with the
parent's successful outcome (same transaction), the parent waits ``blocked`` on them through
ordinary edges, and the coordinator completes it — or fails it — when the last child ends."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.utils import timezone

from ..conf import taskhub_settings
from ..definitions.payloads import validate_payload
from ..definitions.registry import get_definition
from ..engine.enqueue import _check_queue, _new_row, _resolve_options
from ..errors import InvalidTaskRequest
from ..models import EventKind, Task, TaskEvent, TaskStatus
from .models import StepEdge


def prepare_child(
    task: Any, payload: dict[str, Any] | None, options: dict[str, Any], *, spawned: int = 0
) -> Task:
    """A child row, checked now; its parent and ids are filled in when it is written.

    ``spawned`` is how many children the attempt has spawned already: past MAX_CHILDREN the
    request is refused (InvalidTaskRequest fails the task at once, its children unwritten).
    """
    limit = taskhub_settings.MAX_CHILDREN
    if spawned >= limit:
        raise InvalidTaskRequest(
            f"a task may spawn at most {limit} children (MAX_CHILDREN)", field="children"
        )
    definition = get_definition(task)
    _check_queue(definition)
    clean = validate_payload(definition, payload)
    allowed = {"priority", "max_attempts", "timeout", "delay"}
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"spawn() got unexpected options: {', '.join(sorted(unknown))}")
    now = timezone.now()
    opts = _resolve_options(
        definition,
        priority=options.get("priority"),
        max_attempts=options.get("max_attempts"),
        delay=options.get("delay"),
        eta=None,
        correlation_id=None,
        user_id=None,
        timeout=options.get("timeout"),
        now=now,
    )
    return _new_row(definition, clean, opts, None, now)


def insert_children(parents: list[tuple[str, int, list[Task]]], now: dt.datetime) -> set[str]:
    """Write the children of parents that just moved to ``blocked``; return the queues."""
    if not parents:
        return set()
    info = {
        str(p["id"]): p
        for p in Task.objects.filter(id__in=[p for p, _, _ in parents]).values(
            "id", "workflow_run_id", "step_key", "correlation_id", "user_id"
        )
    }
    rows, edges = [], []
    for parent_id, attempt, children in parents:
        parent = info[parent_id]
        for index, child in enumerate(children):
            child.id, child.parent_id = uuid.uuid4(), parent["id"]
            child.created_at = child.updated_at = now
            child.correlation_id = child.correlation_id or parent["correlation_id"]
            child.user_id = child.user_id or parent["user_id"]
            if parent["workflow_run_id"]:
                child.workflow_run_id, child.step_kind = parent["workflow_run_id"], "forward"
                child.step_key = f"{parent['step_key']}#{attempt}/child[{index}]"
            rows.append(child)
            edges.append(
                StepEdge(
                    run_id=parent["workflow_run_id"],
                    upstream_id=child.id,
                    downstream_id=parent["id"],
                )
            )
        Task.objects.filter(id=parent["id"]).update(deps_remaining=len(children))
    Task.objects.bulk_create(rows, batch_size=1000)
    StepEdge.objects.bulk_create(edges, batch_size=1000)
    TaskEvent.objects.bulk_create(
        [
            TaskEvent(
                task_id=r.id,
                kind=EventKind.CREATED,
                attempt=0,
                at=now,
                data={"parent": str(r.parent_id)},
            )
            for r in rows
        ],
        batch_size=1000,
    )
    return {r.queue for r in rows if r.status == TaskStatus.PENDING}
