"""When a step may run: the trigger rules, evaluated once every dependency has ended."""

from __future__ import annotations

from typing import Any

from ..models import TaskStatus
from .models import FailurePolicy, WorkflowRun, WorkflowStatus


def edge_satisfied(upstream: dict[str, Any], when: dict[str, Any] | None) -> bool:
    """Whether ``upstream`` counts as succeeded for an edge: it completed (with a result
    matching ``when``, if the edge has one), or it failed but was allowed to."""
    status = upstream["status"]
    if status == TaskStatus.FAILED and upstream.get("allow_failure"):
        return when is None
    if status != TaskStatus.COMPLETED:
        return False
    if when is None:
        return True
    result = upstream.get("result")
    return isinstance(result, dict) and all(result.get(k) == v for k, v in when.items())


def _rule_allows(rule: str, edges: list[dict[str, Any]]) -> bool:
    if rule == "all_done":
        return True
    if rule == "any_failed":
        return any(e["upstream_status"] in (TaskStatus.FAILED, TaskStatus.CANCELLED) for e in edges)
    return all(e["satisfied"] for e in edges)  # all_success


def decide(
    step: dict[str, Any],
    edges: list[dict[str, Any]],
    run: WorkflowRun | None,
    *,
    waiting_for_children: bool = False,
) -> str:
    """``run`` or ``skip`` — or, for a parent whose children ended, ``complete`` / ``fail``."""
    if waiting_for_children:
        return "complete" if all(e["satisfied"] for e in edges) else "fail"
    if run is None:
        return "skip"
    if step["step_kind"] == "compensation":
        return "run" if run.status == WorkflowStatus.COMPENSATING else "skip"
    if run.status != WorkflowStatus.RUNNING:
        return "skip"  # cancelling, compensating, …: nothing new starts
    rule = step["trigger_rule"] or "all_success"
    if run.error and run.on_failure != FailurePolicy.CONTINUE and rule == "all_success":
        return "skip"  # failing fast: only finalizers (all_done) and error branches still run
    return "run" if _rule_allows(rule, edges) else "skip"
