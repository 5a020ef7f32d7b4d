"""A parent spawning more than MAX_CHILDREN children, run by a real worker: it fails at once (no
retry) with an error naming the limit, and no child row is written."""

import json

import pytest

from taskhub import schedule
from taskhub.models import Task
from tests.support import wait_status

pytestmark = [pytest.mark.e2e]


def test_a_parent_over_the_children_limit_fails_without_children(make_stack):
    make_stack(
        processes=1, threads=2, env={"TASKHUB_SETTINGS_JSON": json.dumps({"MAX_CHILDREN": 3})}
    ).start()
    within = schedule("test.wf.parent", {"children": 3}, max_attempts=3)
    over = schedule("test.wf.parent", {"children": 4}, max_attempts=3)

    over = wait_status(over.id, ("completed", "failed"), timeout=60)
    within = wait_status(within.id, ("completed", "failed"), timeout=60)

    assert over.status == "failed" and over.attempt == 1  # permanent: not retried
    assert "at most 3 children" in over.error
    assert not Task.objects.filter(parent_id=over.id).exists()
    assert within.status == "completed"
    assert Task.objects.filter(parent_id=within.id).count() == 3
