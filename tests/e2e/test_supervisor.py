"""`taskhub up` supervises its children as a process manager does: a child that dies (kill -9,
OOM) is started again and the rest of the stack keeps running; only Ctrl-C / SIGTERM stops it.
Its workers dispatch (one leads at a time): the one killed here is the leader."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.utils import timezone

from taskhub import schedule_many
from taskhub.engine.dispatcher import live_workers
from taskhub.engine.leadership import current_leader
from taskhub.models import Task, WorkerProcess
from tests.support import free_port, healthz_ok, start_taskhub_up, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _descendants(pid: int) -> set[int]:
    found = set(_children(pid))
    for child in list(found):
        found |= _descendants(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _is_worker_main(pid: int) -> bool:
    # rundramatiq execs Dramatiq's own command line, whose main process forks the workers.
    return "dramatiq" in _cmdline(pid) and "uvicorn" not in _cmdline(pid)


def _worker_mains(up_pid: int) -> list[int]:
    return [p for p in _children(up_pid) if _is_worker_main(p)]


def _dramatiq_processes(up_pid: int) -> list[int]:
    """The Dramatiq worker processes (children of the rundramatiq main processes)."""
    return [p for main in _worker_mains(up_pid) for p in _children(main)]


def _finished_or_stack_gone(ids: list, up: subprocess.Popen) -> bool:
    done = Task.objects.filter(id__in=ids, status="completed").count() == len(ids)
    return done or up.poll() is not None


def test_up_restarts_a_killed_worker_and_the_other_children_keep_running(transactional_db):
    port = free_port()
    up = start_taskhub_up(port, "--processes", "2", "--threads", "2")
    log_path = up.log_path
    family: set[int] = set()
    try:
        wait_for(lambda: healthz_ok(port), timeout=90, message="the web server")
        wait_for(lambda: len(live_workers(timezone.now())) >= 2, timeout=60, message="2 workers")
        others = {p: _cmdline(p) for p in _children(up.pid) if not _is_worker_main(p)}
        assert len(others) >= 2  # web and scheduler (the scheduler is enabled in the tests)
        # The workers dispatch (EMBEDDED_DISPATCHER, the default): no dispatcher process.
        assert not [c for c in others.values() if "taskhub dispatcher" in c], others

        before = [t.id for t in schedule_many("test.sleep", [{"seconds": 0.05}] * 200)]
        wait_for(
            lambda: Task.objects.filter(id__in=before, status="completed").count() >= 20,
            timeout=60,
            message="the first tasks to complete",
        )
        # The worker process that leads dispatching: the other must take over.
        leader_pid = WorkerProcess.objects.get(id=wait_for(current_leader, timeout=10)).pid
        victim = leader_pid
        siblings = [p for p in _dramatiq_processes(up.pid) if p != victim]
        assert victim in _dramatiq_processes(up.pid)
        os.kill(victim, signal.SIGKILL)  # what the OOM killer does

        # Tasks scheduled after the kill complete too, and so do those the victim held.
        after = [t.id for t in schedule_many("test.sleep", [{"seconds": 0.01}] * 100)]
        wait_for(
            lambda: _finished_or_stack_gone(before + after, up),
            timeout=120,
            interval=0.5,
            message="every task to complete",
        )
        assert up.poll() is None, f"taskhub up stopped: {log_path.read_text()[-2000:]}"
        assert Task.objects.filter(id__in=before + after, status="completed").count() == 300

        # The killed worker was replaced; web and scheduler were never restarted.
        wait_for(lambda: len(_dramatiq_processes(up.pid)) == 2, timeout=60, message="2 workers")
        assert victim not in _dramatiq_processes(up.pid)
        # The other worker process was not shut down with it: it kept its work and its pid.
        assert siblings and all(p in _dramatiq_processes(up.pid) for p in siblings)
        assert {p: _cmdline(p) for p in _children(up.pid) if p in others} == others
        assert all(_alive(p) for p in others)
        assert "restart" in log_path.read_text()
        family = _descendants(up.pid)
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(timeout=90)
    # SIGTERM still stops everything, cleanly.
    assert code == 0
    time.sleep(0.5)
    assert [p for p in family if _alive(p)] == []
