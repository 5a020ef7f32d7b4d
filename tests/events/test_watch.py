"""``manage.py taskhub watch ID`` follows a task's events to its end, against real workers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import taskhub
from tests.support import ROOT, child_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def _watch(task_id) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "taskhub",
            "watch",
            str(task_id),
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_watch_follows_a_retried_task_to_completion_and_exits_0(stack, transactional_db):
    # Given a task that fails once, then succeeds
    task = taskhub.schedule("test.fail_times", {"times": 1})
    # When someone watches it
    proc = _watch(task.id)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    # Then each event is one JSON line, through the retry, ending with completion
    types = [e["type"] for e in lines]
    assert types[0] == "task.created", (types, err)
    assert "task.retrying" in types
    assert types[-1] == "task.completed"
    assert [e["attempt"] for e in lines if e["type"] == "task.started"] == [1, 2]
    assert {e["task"] for e in lines} == {str(task.id)}


def test_watch_exits_1_when_the_task_fails_for_good(stack, transactional_db):
    task = taskhub.schedule("test.fail_times", {"times": 5}, max_attempts=2)
    proc = _watch(task.id)
    out, err = proc.communicate(timeout=90)
    types = [json.loads(line)["type"] for line in out.splitlines()]
    assert proc.returncode == 1, err
    assert types[-2:] == ["task.failed", "task.dead_lettered"]


def test_watch_of_an_unknown_task_is_an_input_error(transactional_db):
    proc = _watch("00000000-0000-0000-0000-000000000000")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "no task" in err
