"""The supervision loop of `taskhub up` (taskhub/cli/launcher.py) on tiny real processes; the whole
stack under kill -9 is tests/e2e/test_supervisor.py."""

import sys
import threading
import time

import pytest
from django.core.management.base import CommandError

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


# -- what `taskhub up` runs: the project's ASGI application and manage.py -------------------------


def test_the_web_process_serves_the_projects_asgi_application(settings):
    settings.ASGI_APPLICATION = "mysite.asgi.application"
    assert launcher.asgi_target() == "mysite.asgi:application"
    web = Stack().commands()["web"]
    assert web[web.index("uvicorn") + 1] == "mysite.asgi:application"


@pytest.mark.parametrize("value", [None, "", "application"])
def test_no_asgi_application_is_a_clear_error_before_anything_starts(settings, value):
    settings.ASGI_APPLICATION = value
    with pytest.raises(CommandError) as error:
        Stack().run()
    assert error.value.returncode == 2
    assert "ASGI_APPLICATION" in str(error.value) and "mysite.asgi.application" in str(error.value)


def test_children_run_the_manage_py_that_started_the_stack(settings, tmp_path, monkeypatch):
    project = (tmp_path / "project").resolve()
    project.mkdir()
    (project / "manage.py").write_text("")
    monkeypatch.setattr(sys, "argv", [str(project / "manage.py"), "taskhub", "up"])
    del settings.BASE_DIR
    monkeypatch.chdir(tmp_path)

    assert launcher.project_entry() == ([sys.executable, str(project / "manage.py")], project)


def test_without_a_manage_py_script_children_find_the_one_in_base_dir_or_the_working_directory(
    settings, tmp_path, monkeypatch
):
    monkeypatch.setattr(sys, "argv", ["/usr/bin/django-admin", "taskhub", "up"])
    tmp_path = tmp_path.resolve()
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "manage.py").write_text("")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    settings.BASE_DIR = tmp_path / "base"
    assert launcher.project_entry()[1] == tmp_path / "base"

    del settings.BASE_DIR
    (tmp_path / "cwd" / "manage.py").write_text("")
    assert launcher.project_entry()[1] == tmp_path / "cwd"

    # No manage.py anywhere: Django's own entry point, with the inherited settings module.
    (tmp_path / "cwd" / "manage.py").unlink()
    assert launcher.project_entry() == ([sys.executable, "-m", "django"], tmp_path / "cwd")
