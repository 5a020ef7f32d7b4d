"""MAX_CHILDREN: a task spawning more children than the limit fails at once with an error naming
the limit, and writes no child; the worker's run of it is tests/e2e/test_children_limit.py."""

import pytest

from taskhub.conf import taskhub_settings
from taskhub.engine.context import TaskContext
from taskhub.errors import InvalidTaskRequest


def context() -> TaskContext:
    return TaskContext(
        task_id="t",
        name="test.wf.parent",
        queue="default",
        attempt=1,
        max_attempts=1,
        correlation_id="",
        user_id="",
        _writer=None,
    )


def test_the_limit_is_a_setting_with_the_documented_default():
    assert taskhub_settings.MAX_CHILDREN == 10_000


def test_spawning_past_the_limit_raises_naming_it(settings):
    settings.TASKHUB = {**settings.TASKHUB, "MAX_CHILDREN": 3}
    ctx = context()
    for index in range(3):
        ctx.spawn("test.wf.step", {"name": f"c{index}"})

    with pytest.raises(InvalidTaskRequest, match="at most 3 children") as raised:
        ctx.spawn("test.wf.step", {"name": "one too many"})

    assert raised.value.field == "children"
    assert len(ctx.spawned) == 3
