"""The engine's hooks (taskhub.engine.hooks): every one is answered once Django is set up, and a
hook nobody registered fails loudly instead of leaving workflow steps unsettled."""

import pytest

from taskhub.engine import hooks
from taskhub.workflows import access, children, coordinator, reconciler


def test_every_engine_hook_is_answered():
    assert set(hooks._registered) == set(hooks.HOOKS)
    assert hooks._registered["steps_ended"] is coordinator.settle
    assert hooks._registered["children_spawned"] is children.insert_children
    assert hooks._registered["reconcile"] is reconciler.reconcile
    assert hooks._registered["workflow_info"] is access.workflow_info
    assert hooks._registered["prepare_child"] is children.prepare_child
    assert hooks._registered["wake_in_process"].__module__ == "taskhub.apps"


def test_a_hook_nobody_registered_raises(monkeypatch):
    monkeypatch.delitem(hooks._registered, "steps_ended")

    with pytest.raises(hooks.HookNotRegistered, match="steps_ended"):
        hooks.steps_ended(["00000000-0000-0000-0000-000000000000"])


def test_an_unknown_hook_is_refused():
    with pytest.raises(TypeError, match="unknown engine hooks: step_ended"):
        hooks.register(step_ended=print)
