"""What taskhub.workflows answers when the engine calls up (taskhub.engine.hooks): settling
steps, writing spawned children, the lifeline's reconciliation and a step's context. Registered
by TaskhubConfig.ready() (taskhub/apps.py)."""

from ..engine import hooks
from . import access, children, coordinator, reconciler


def register() -> None:
    hooks.register(
        steps_ended=coordinator.settle,
        children_spawned=children.insert_children,
        reconcile=reconciler.reconcile,
        workflow_info=access.workflow_info,
        dependency_results=access.dependency_results,
        child_results=access.child_results,
        forward_step=access.forward_step,
        prepare_child=children.prepare_child,
    )
