"""Where the engine calls a higher layer: hooks that layer registers, so that the engine never
imports it (.importlinter, the layers contract).

The engine knows when something concerns workflows — tasks reached a final state, the lifeline's
periodic pass, a handler reading its step's context or spawning children — but not what to do
about it. taskhub.workflows answers each of these hooks (taskhub/workflows/hooks.py), registered
by TaskhubConfig.ready() (taskhub/apps.py) in every process before any work runs. The same
ready() registers the test support's hook (taskhub.testing, imported only when it is called).

Every hook is required: calling one that nobody registered raises :class:`HookNotRegistered`
(the taskhub app is not installed, or Django was not set up), rather than silently leaving
workflow steps unsettled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

#: The hooks, each called through the function of the same name below (which says what the
#: engine expects of it).
HOOKS = (
    "steps_ended",
    "children_spawned",
    "reconcile",
    "workflow_info",
    "dependency_results",
    "child_results",
    "forward_step",
    "prepare_child",
    "wake_in_process",
)

_registered: dict[str, Callable[..., Any]] = {}


class HookNotRegistered(RuntimeError):
    """The engine needed a hook that no layer registered."""


def register(**functions: Callable[..., Any]) -> None:
    """Register the function answering each named hook (one of :data:`HOOKS`)."""
    unknown = set(functions) - set(HOOKS)
    if unknown:
        raise TypeError(f"unknown engine hooks: {', '.join(sorted(unknown))}")
    _registered.update(functions)


def _hook(name: str) -> Callable[..., Any]:
    try:
        return _registered[name]
    except KeyError:
        raise HookNotRegistered(
            f"no function is registered for the engine hook {name!r}: taskhub's AppConfig.ready()"
            " registers it (is 'taskhub' in INSTALLED_APPS, and Django set up?)"
        ) from None


# -- what the engine calls ------------------------------------------------------------------------


def steps_ended(task_ids: Iterable[Any], *, now: dt.datetime | None = None) -> None:
    """These tasks just reached a final state (an outcome was written; a lost attempt was the
    last one, or its task had been asked to stop): resolve what depends on them. Called inside
    the transaction that made them final, so a step's end and its consequences commit together."""
    _hook("steps_ended")(task_ids, now=now)


def children_spawned(parents: list[tuple[str, int, list[Any]]], now: dt.datetime) -> set[str]:
    """Write the children spawned by attempts that just ended ``blocked`` — (parent id, attempt,
    child rows from :func:`prepare_child`) — in the outcome's transaction; returns their queues."""
    return _hook("children_spawned")(parents, now)


def reconcile() -> None:
    """The lifeline's periodic backstop for whatever the paths above left unsettled."""
    _hook("reconcile")()


def workflow_info(task_id: str) -> Any:
    """``ctx.workflow``: the run this task is a step of, or None."""
    return _hook("workflow_info")(task_id)


def dependency_results(task_id: str) -> dict[str, Any]:
    """``ctx.results``: the results of the steps this one depends on, by step key."""
    return _hook("dependency_results")(task_id)


def child_results(task_id: str) -> list[Any]:
    """``ctx.child_results``: the results of the children this task spawned."""
    return _hook("child_results")(task_id)


def forward_step(task_id: str) -> Any:
    """``ctx.forward``: in a compensation, the step it undoes."""
    return _hook("forward_step")(task_id)


def prepare_child(
    task: Any, payload: dict[str, Any] | None, options: dict[str, Any], *, spawned: int
) -> Any:
    """``ctx.spawn``: a child row, checked now (InvalidTaskRequest), written with the attempt's
    outcome through :func:`children_spawned`."""
    return _hook("prepare_child")(task, payload, options, spawned=spawned)


def wake_in_process(queues: tuple[str, ...]) -> None:
    """With ``TASKHUB["TESTING"]`` set, a dispatcher wake-up stays in the process: the test
    support (taskhub.testing) takes it, and in immediate mode runs the queues' due tasks
    (docs/testing.md)."""
    _hook("wake_in_process")(queues)
