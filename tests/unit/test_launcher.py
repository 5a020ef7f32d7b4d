"""The supervision loop of `taskhub up` (taskhub/cli/launcher.py) on tiny real processes; the whole
stack under kill -9 is tests/e2e/test_supervisor.py."""

import sys
import threading
import time

import pytest

from taskhub.cli import launcher
from taskhub.cli.launcher import Child, Stack

EXIT_AT_ONCE = [sys.executable, "-c", "raise SystemExit(3)"]
RUN_LONG = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def fast_restarts(monkeypatch):
    monkeypatch.setattr(launcher, "RESTART_BACKOFF", 0.05)
    monkeypatch.setattr(launcher, "POLL_INTERVAL", 0.02)


def supervise(stack: Stack, commands: dict[str, list[str]], seconds: float) -> int | None:
    """Run the supervision loop for a while (or until it gives up); its result, or None."""
    for name, argv in commands.items():
        stack.children[name] = Child(name, argv)
        stack._start(stack.children[name])
    result = []
    loop = threading.Thread(target=lambda: result.append(stack._watch()))
    loop.start()
    loop.join(seconds)
    stack._stopping = True
    loop.join(5)
    stack._shutdown()
    return result[0] if result else None


def test_a_child_that_exits_is_restarted_and_the_others_are_left_alone(fast_restarts, caplog):
    stack = Stack()
    stack.children["crashing"] = Child("crashing", RUN_LONG)
    stack._start(stack.children["crashing"])
    first = stack.children["crashing"].process
    first.kill()  # as the OOM killer would
    stack.children["steady"] = Child("steady", RUN_LONG)
    stack._start(stack.children["steady"])
    steady = stack.children["steady"].process

    assert supervise(stack, {}, seconds=1.0) == 0  # stopped by the signal flag, not given up
    assert stack.children["crashing"].restarts == 1
    assert stack.children["crashing"].process.pid != first.pid
    assert stack.children["steady"].process is steady and stack.children["steady"].restarts == 0
    assert f"crashing (pid {first.pid}) exited unexpectedly with code -9" in caplog.text


def test_restarts_back_off_and_a_child_that_never_starts_stops_the_stack(
    fast_restarts, monkeypatch, caplog
):
    monkeypatch.setattr(launcher, "MAX_FAILED_STARTS", 4)
    stack = Stack()
    started = time.monotonic()

    assert supervise(stack, {"broken": EXIT_AT_ONCE, "steady": RUN_LONG}, seconds=5) == 1
    # 0.1 + 0.2 + 0.4 s of backoff between the four starts
    assert time.monotonic() - started >= 0.7
    assert stack.children["broken"].restarts == 3
    assert stack.children["steady"].restarts == 0
    assert "broken exited with code 3 4 times in a row" in caplog.text


def test_a_child_that_ran_once_is_restarted_for_ever(fast_restarts, monkeypatch):
    monkeypatch.setattr(launcher, "MAX_FAILED_STARTS", 2)
    stack = Stack()
    stack.children["flaky"] = Child("flaky", EXIT_AT_ONCE, started_once=True)
    stack._start(stack.children["flaky"])
    monkeypatch.setattr(launcher, "RESTART_BACKOFF_MAX", 0.1)

    assert supervise(stack, {}, seconds=2.0) == 0
    assert stack.children["flaky"].restarts >= 3
