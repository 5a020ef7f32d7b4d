"""The chaos run's two stacks (``--chaos-shape``): worker units with a dispatcher process, or
``rundramatiq`` alone with the units dispatching — and the fault that replaces the dispatcher's
SIGKILL there, ``leader-sigkill``. No process of the stack is started here."""

import json
import signal
import subprocess
import sys
import time

import pytest

from bench import run
from bench.chaos import LEAVE_OUT_CHOICES, Drill, _fill_kill_affected
from bench.chaos_check import Fault, Kill, Mark
from bench.chaos_procs import (
    FAULT_WEIGHTS,
    SHAPES,
    ChaosStack,
    Faults,
    fault_weights,
    holder_pid,
)
from bench.core import Context


def plan(seed, shape="dispatcher", leave_out=frozenset()):
    return Drill(Context(quick=True), 120, 5000, seed, frozenset(leave_out), shape).plan()


def test_the_shape_option_defaults_to_a_dispatcher_process_and_refuses_others():
    assert run.parse_args([]).chaos_shape == "dispatcher"
    with pytest.raises(SystemExit) as exc:
        run.parse_args(["--chaos-shape", "kubernetes"])
    assert exc.value.code == 2
    assert run.parse_args(["--chaos-leave-out", "leader-sigkill"]).chaos_leave_out == {
        "leader-sigkill"
    }
    assert {"leader-sigkill", "dispatcher-sigkill"} <= set(LEAVE_OUT_CHOICES)
    for shape in SHAPES:  # the option offers every shape the stack knows
        assert run.parse_args(["--chaos-shape", shape]).chaos_shape == shape


def test_the_workers_shape_kills_the_leader_where_the_other_kills_the_dispatcher():
    workers, dispatcher = plan(11, "workers"), plan(11, "dispatcher")
    kinds = {kind for _, kind in workers}
    assert "leader-sigkill" in kinds and "dispatcher-sigkill" not in kinds
    assert kinds == set(fault_weights("workers"))
    assert {kind for _, kind in dispatcher} == set(FAULT_WEIGHTS)
    assert "leader-sigkill" not in {kind for _, kind in dispatcher}
    assert plan(11) == dispatcher  # the default shape: a seed's plan as before
    # The same weights under another name: the same times and draws, one kind renamed.
    assert workers == [
        (t, "leader-sigkill" if kind == "dispatcher-sigkill" else kind) for t, kind in dispatcher
    ]
    assert fault_weights("workers")["leader-sigkill"] == FAULT_WEIGHTS["dispatcher-sigkill"]
    assert "leader-sigkill" not in {k for _, k in plan(11, "workers", {"leader-sigkill"})}


@pytest.mark.parametrize(
    ("shape", "roles", "embedded"),
    [
        ("dispatcher", ["worker-0", "worker-1", "dispatcher", "scheduler"], False),
        ("workers", ["worker-0", "worker-1", "scheduler"], True),
    ],
)
def test_the_stack_has_a_dispatcher_process_only_in_the_dispatcher_shape(shape, roles, embedded):
    given = {"TASKHUB_SETTINGS_JSON": json.dumps({"EMBEDDED_DISPATCHER": not embedded, "X": 1})}
    stack = ChaosStack(given, 2, 16, 2000, shape)

    assert list(stack.roles) == roles
    assert stack.env["TASKHUB_EMBEDDED_DISPATCHER"] == ("1" if embedded else "0")
    # A setting handed down in TASKHUB_SETTINGS_JSON (applied last) cannot turn it around.
    assert json.loads(stack.env["TASKHUB_SETTINGS_JSON"]) == {
        "EMBEDDED_DISPATCHER": embedded,
        "X": 1,
    }
    with pytest.raises(ValueError, match="unknown shape"):
        ChaosStack({}, 2, 16, 2000, "both")


def test_the_leader_pid_is_read_from_the_lease_holder():
    assert holder_pid("web-1:4242:0f1e2d3c") == 4242  # a worker's worker_id
    assert holder_pid("dispatcher:web-1:77:0f1e2d3c") == 77  # a dispatcher process
    assert holder_pid("fe80::1:31337:0f1e2d3c") == 31337  # a hostname with colons
    assert holder_pid(None) is None
    assert holder_pid("") is None
    assert holder_pid("web-1:not-a-pid:0f1e2d3c") is None
    assert holder_pid("4242") is None


class FakeUnit:
    """A unit's main process, as Proc: alive, with the given worker processes as children."""

    def __init__(self, pid, children):
        self.pid, self._children = pid, children

    def alive(self):
        return True

    def children(self):
        return list(self._children)


class FakeRandom:
    def uniform(self, a, b):
        return a


def _stack_with(worker_pid, up_for=100.0):
    stack = ChaosStack({}, 2, 16, 2000, "workers")
    stack.roles["worker-0"].proc = FakeUnit(1, [999_999_999])
    stack.roles["worker-1"].proc = FakeUnit(2, [worker_pid])
    for role in stack.roles.values():
        role.started_at = time.time() - up_for
    return stack


def test_leader_sigkill_kills_the_worker_process_holding_the_lease_and_records_the_kill():
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stack = _stack_with(victim.pid)
        holder = f"host-a:{victim.pid}:0f1e2d3c"
        faults = Faults(stack, None, "db", FakeRandom(), 7, lambda: ["t1", "t2"], lambda: holder)

        fault = faults.inject("leader-sigkill")

        assert victim.wait(10) == -signal.SIGKILL
        assert fault.kind == "leader-sigkill"
        assert fault.detail == {"role": "worker-1", "pid": victim.pid, "holder": holder}
        assert fault.affected == ["t1", "t2"]  # queued or running: dispatching stopped too
        assert stack.roles["worker-1"].restart_delay == 0.5
        (kill,) = faults.kill_records()
        assert kill.pids == {victim.pid} and kill.signal == "SIGKILL" and kill.at == fault.at
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.parametrize(
    ("holder", "up_for"),
    [
        (None, 100.0),  # nobody leads (between leaders)
        ("host-a:123456789:0f1e2d3c", 100.0),  # not a worker process of a unit
        ("garbage", 100.0),
        ("host-a:{pid}:0f1e2d3c", 5.0),  # the leader's unit is not up long enough yet
    ],
)
def test_leader_sigkill_does_nothing_without_a_leader_among_the_units(holder, up_for):
    stack = _stack_with(4242, up_for)
    holder = holder.format(pid=4242) if holder else holder
    faults = Faults(stack, None, "db", FakeRandom(), 7, lambda: [], lambda: holder)

    assert faults.leader_sigkill() is None
    assert faults.kills == []


def test_a_killed_leaders_affected_work_is_the_snapshot_and_its_own_in_flight_work():
    # Faults in the order injected: a leader kill, then a worker kill; one Kill each, in order.
    leader = Fault("leader-sigkill", 5.0, affected=["queued-1", "a"], detail={"pid": 100})
    stall = Fault("redis-stall", 6.0, affected=["x"])
    worker = Fault("worker-sigkill", 8.0, detail={"pid": 101})
    kills = [
        Kill(5.0, frozenset({100}), "SIGKILL", 5.0),
        Kill(8.0, frozenset({101}), "SIGKILL", 8.0),
    ]
    marks = [
        Mark("S", "a", 1, 100, 1.0, "noop"),  # running in the leader when it died
        Mark("S", "b", 1, 100, 2.0, "noop"),
        Mark("S", "c", 1, 101, 7.0, "noop"),  # running in the worker when it died
        Mark("S", "d", 1, 101, 1.0, "noop"),
        Mark("E", "d", 1, 101, 1.5, "ok"),  # ended long before: not in flight
    ]

    _fill_kill_affected([leader, stall, worker], kills, marks, {})

    assert leader.affected == ["queued-1", "a", "b"]
    assert stall.affected == ["x"]
    assert worker.affected == ["c"]
