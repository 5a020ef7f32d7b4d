"""The chaos run's checker (bench/chaos_check.py) on synthetic rows and records: it must pass a
clean run and name every kind of violation it is there to catch."""

import pytest

from bench.chaos_check import (
    Expectation,
    Fault,
    Kill,
    Mark,
    RowState,
    check,
    parse_record,
    summary,
)

NOOP = Expectation("noop")


def start(task, attempt, pid, at):
    return Mark("S", task, attempt, pid, at, "noop")


def end(task, attempt, pid, at, how="ok"):
    return Mark("E", task, attempt, pid, at, how)


def done(task, attempt=1, at=10.0):
    return RowState(task, "completed", attempt, "noop", finished_at=at)


def test_a_clean_run_passes_with_a_planned_retry_and_a_kill_explained_rerun():
    ledger = {"a": NOOP, "b": Expectation("flaky"), "c": NOOP}
    rows = {"a": done("a"), "b": done("b", 2), "c": done("c", 2, at=8.0)}
    marks = [
        start("a", 1, 100, 1.0),
        end("a", 1, 100, 1.1),
        start("b", 1, 100, 1.0),
        end("b", 1, 100, 1.2, "planned-failure"),
        start("b", 2, 101, 2.0),
        end("b", 2, 101, 2.1),
        start("c", 1, 100, 3.0),  # pid 100 is killed at 4.0 with c running: it runs again
        start("c", 2, 101, 7.0),
        end("c", 2, 101, 7.5),
    ]
    kills = [Kill(at=4.0, pids=frozenset({100}), signal="SIGKILL")]
    faults = [Fault("worker-sigkill", at=4.0, affected=["c"])]

    findings = check(ledger, rows, marks, kills, faults)

    assert findings.ok, summary(findings)
    assert findings.duplicates == [("c", 2)]
    assert findings.in_flight_at_kills == 1
    assert findings.slowest_recovery == 4.0


def test_a_lost_task_and_an_attempt_started_twice_fail_the_check():
    ledger = {"a": NOOP, "b": NOOP, "gone": NOOP}
    rows = {"a": done("a"), "b": done("b")}  # "gone" has no row
    marks = [
        start("a", 1, 100, 1.0),
        end("a", 1, 100, 1.1),
        start("b", 1, 100, 1.0),
        start("b", 1, 101, 6.0),
        end("b", 1, 101, 6.1),  # the same attempt again
    ]
    kills = [Kill(at=5.0, pids=frozenset({100}), signal="SIGTERM", until=5.5)]

    findings = check(ledger, rows, marks, kills)
    report = summary(findings)

    assert not findings.ok
    assert report["lost"] == 1 and findings.lost == [("gone", "no row")]
    assert report["attempts_started_twice"] == 1
    assert findings.attempts_twice == {("b", 1): 2}


def test_a_rerun_of_work_in_a_live_process_is_a_stray_duplicate():
    # b ended long before its process was killed, and c's process was never killed: re-running
    # either is the engine presuming live or finished work lost (e.g. a stalled Redis).
    ledger = {"b": NOOP, "c": NOOP}
    rows = {"b": done("b", 2), "c": done("c", 2)}
    marks = [
        start("b", 1, 100, 1.0),
        end("b", 1, 100, 1.1),
        start("b", 2, 101, 9.0),
        end("b", 2, 101, 9.1),
        start("c", 1, 102, 1.0),
        start("c", 2, 101, 9.0),
        end("c", 2, 101, 9.1),
    ]
    kills = [Kill(at=8.0, pids=frozenset({100}), signal="SIGKILL")]

    findings = check(ledger, rows, marks, kills)

    assert not findings.ok
    assert {(t, a) for t, a, _ in findings.stray} == {("b", 2), ("c", 2)}
    assert findings.in_flight_at_kills == 0


def test_completed_without_a_start_is_lost_and_stuck_rows_and_wrong_endings_are_counted():
    ledger = {
        "ghost": NOOP,
        "stuck": NOOP,
        "gave-up": NOOP,
        "cancel": Expectation("cancel", allowed=frozenset({"cancelled", "completed"})),
    }
    rows = {
        "ghost": done("ghost"),
        "stuck": RowState("stuck", "queued", 3, "noop"),
        "gave-up": RowState("gave-up", "failed", 40, "noop", finished_at=5.0),
        "cancel": RowState("cancel", "cancelled", 1, "cancel", finished_at=5.0),
    }
    marks = [
        start("gave-up", 40, 100, 4.0),
        end("gave-up", 40, 100, 4.5, "error:OSError"),
        start("cancel", 1, 100, 1.0),
        end("cancel", 1, 100, 1.5, "cancelled"),
    ]
    faults = [Fault("redis-stall", at=1.0, back_at=2.0, affected=["stuck"])]

    findings = check(ledger, rows, marks, [], faults)
    report = summary(findings)

    assert findings.lost == [("ghost", "completed as attempt 1, never started")]
    assert findings.non_terminal == {"queued": 1}
    assert findings.wrong_status == [("gave-up", "noop", "failed")]
    assert report["faults_never_recovered"] == 1 and report["slowest_recovery_s"] is None
    assert report["unplanned_handler_errors"] == {"error:OSError": 1}
    assert not findings.ok


def test_a_cancel_the_drill_retried_justifies_the_next_start():
    ledger = {"t": Expectation("cancel", retried_at=3.0)}
    rows = {"t": done("t", 2)}
    marks = [
        start("t", 1, 100, 1.0),
        end("t", 1, 100, 2.0, "cancelled"),
        start("t", 2, 100, 4.0),
        end("t", 2, 100, 5.0),
    ]

    assert check(ledger, rows, marks, []).ok
    ledger["t"].retried_at = None  # the same re-run without the drill's retry: a duplicate
    assert not check(ledger, rows, marks, []).ok


def test_the_record_parser_reads_lines_and_skips_torn_ones():
    lines = ["S 6f0c 1 42 1.5 noop\n", "E 6f0c 1 42 1.75 ok\n", "S 6f0c", "garbage here x y z"]
    assert parse_record(lines) == [
        Mark("S", "6f0c", 1, 42, 1.5, "noop"),
        Mark("E", "6f0c", 1, 42, 1.75, "ok"),
    ]


def test_the_chaos_run_comes_with_the_fault_drills_and_refuses_unknown_leave_outs():
    from bench import run

    assert "chaos" not in run.selected(run.parse_args([]))
    assert "chaos" in run.selected(run.parse_args(["--faults"]))
    assert run.selected(run.parse_args(["--only", "chaos"])) == ["chaos"]
    args = run.parse_args(["--chaos-leave-out", "nul,redis-stall"])
    assert args.chaos_leave_out == {"nul", "redis-stall"}
    with pytest.raises(SystemExit) as exc:
        run.parse_args(["--chaos-leave-out", "nul,meteor-strike"])
    assert exc.value.code == 2


def test_the_fault_plan_is_seeded_hits_every_kind_and_honours_leave_outs():
    from bench.chaos import Drill
    from bench.chaos_procs import FAULT_WEIGHTS
    from bench.core import Context

    def plan(seed, leave_out=frozenset()):
        return Drill(Context(quick=True), 120, 5000, seed, frozenset(leave_out)).plan()

    assert plan(11) == plan(11)
    assert plan(11) != plan(12)
    assert {kind for _, kind in plan(11)} == set(FAULT_WEIGHTS)
    assert all(b > a for (a, _), (b, _) in zip(plan(11), plan(11)[1:], strict=False))
    assert "redis-stall" not in {kind for _, kind in plan(11, {"redis-stall"})}


def test_the_longest_silence_is_the_widest_gap_between_handler_ends():
    marks = [end("a", 1, 1, 11.0), end("b", 1, 1, 12.0), end("c", 1, 1, 20.5), start("d", 1, 1, 30)]
    findings = check({}, {}, marks, [], t0=10.0)
    assert findings.longest_silence == (8.5, 2.0)
