"""The chaos run's checker: what the task rows and the independent record of handler starts say
about a run the drill (bench/chaos.py) disturbed. Pure functions over plain data, so that the
logic is tested on synthetic rows (tests/bench/test_chaos_check.py) as well as used on a run.

Inputs:
- the **ledger**: every task the drill scheduled (ids returned by the engine) with what it
  expects of it (the statuses it may end in);
- the **rows** read back after the drain;
- the **record**: one line per handler start (``S``) and end (``E``), written by the handler
  itself to a per-process file (bench.tasks.chaos_record) — outside everything the faults touch;
- the **kills**: which processes the drill killed, when;
- the **faults**, each with the tasks it found in flight, to time recovery.

Findings:
- lost: a scheduled task with no row, or a row ``completed`` whose recorded attempt never
  started a handler (the engine claims work that never ran);
- wrong final status: a row ended outside what its kind allows (e.g. a no-op ``failed``);
- attempts started twice: one (task, attempt) started more than once — never allowed;
- left non-terminal: a row still pending/queued/running/retrying/blocked after the drain;
- duplicate starts: a handler start that re-runs work which had not ended by a failure the task
  asked for (or by a cancel the drill then retried). Each must follow a start in a process the
  drill killed, which was in flight when it died (no end, or an end within ``flush_grace``
  seconds of the kill: its outcome was still in the writer's buffer); any other is **stray**;
- recovery: per fault, from the fault (or the end of an outage) until the last task it found in
  flight ended; the slowest is reported.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: Statuses a task can still leave on its own (taskhub.models.ACTIVE_STATUSES).
ACTIVE = frozenset({"pending", "queued", "running", "retrying", "blocked"})
#: How a handler end may justify the next start of its task: it asked for a retry.
RETRY_ENDS = frozenset({"planned-failure"})
#: Seconds an ended attempt's outcome may sit in the worker's buffer before it is written
#: (FLUSH_INTERVAL_MS, plus the writer's back-off after a killed database session).
FLUSH_GRACE_S = 2.0


@dataclass(frozen=True)
class Mark:
    """One line of the record: a handler start ("S") or end ("E")."""

    mark: str
    task_id: str
    attempt: int
    pid: int
    at: float
    how: str = ""


@dataclass(frozen=True)
class Kill:
    """Processes that died by the drill's hand: signalled at ``at``, gone by ``until``."""

    at: float
    pids: frozenset[int]
    signal: str
    until: float | None = None

    @property
    def gone_at(self) -> float:
        return self.until if self.until is not None else self.at


@dataclass
class Expectation:
    """What the drill expects of one task it scheduled."""

    kind: str
    allowed: frozenset[str] = frozenset({"completed"})
    #: when the drill retried it (after a cancel): a start after this is not a duplicate
    retried_at: float | None = None


@dataclass(frozen=True)
class RowState:
    """A task row as read after the drain."""

    id: str
    status: str
    attempt: int
    kind: str = ""
    finished_at: float | None = None  # when its final outcome reached the database


@dataclass
class Fault:
    kind: str
    at: float
    back_at: float | None = None  # end of an outage (a stall, Redis down)
    affected: list[str] = field(default_factory=list)  # tasks in flight at it
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Findings:
    lost: list[tuple[str, str]] = field(default_factory=list)
    wrong_status: list[tuple[str, str, str]] = field(default_factory=list)
    attempts_twice: dict[tuple[str, int], int] = field(default_factory=dict)
    non_terminal: dict[str, int] = field(default_factory=dict)
    non_terminal_ids: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, int]] = field(default_factory=list)
    stray: list[tuple[str, int, str]] = field(default_factory=list)
    in_flight_at_kills: int = 0
    #: of those, the ones whose handler had ended (its outcome maybe not yet written)
    ended_in_flight_at_kills: int = 0
    recoveries: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    starts: int = 0
    unplanned_errors: dict[str, int] = field(default_factory=dict)
    #: the longest stretch in which no handler ended (seconds), and when it began (from t0)
    longest_silence: tuple[float, float] = (0.0, 0.0)
    #: for a few example tasks of each violation: their starts and ends, in order
    timelines: dict[str, list[str]] = field(default_factory=dict)

    @property
    def slowest_recovery(self) -> float | None:
        """Seconds; ``inf`` when a fault's in-flight work never ended; None with no faults."""
        values = [r["seconds"] for r in self.recoveries]
        if not values:
            return None
        return max(math.inf if v is None else v for v in values)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.wrong_status
            or self.attempts_twice
            or self.non_terminal
            or self.stray
            or len(self.duplicates) > self.in_flight_at_kills
        )


def parse_record(lines: Iterable[str]) -> list[Mark]:
    """Lines ``S|E task_id attempt pid time how``; an unreadable line is skipped."""
    marks = []
    for line in lines:
        parts = line.split()
        if len(parts) < 5 or parts[0] not in ("S", "E"):
            continue
        try:
            marks.append(
                Mark(
                    parts[0],
                    parts[1],
                    int(parts[2]),
                    int(parts[3]),
                    float(parts[4]),
                    parts[5] if len(parts) > 5 else "",
                )
            )
        except ValueError:
            continue
    return marks


@dataclass
class HandlerRun:
    """One handler start and, if recorded, its end."""

    start: Mark
    end: Mark | None = None


def runs_by_task(marks: list[Mark]) -> dict[str, list[HandlerRun]]:
    """Pair each start with the end of the same attempt in the same process."""
    open_runs: dict[tuple[str, int, int], list[HandlerRun]] = defaultdict(list)
    by_task: dict[str, list[HandlerRun]] = defaultdict(list)
    for m in sorted(marks, key=lambda m: (m.at, m.mark != "S")):
        k = (m.task_id, m.attempt, m.pid)
        if m.mark == "S":
            run = HandlerRun(m)
            open_runs[k].append(run)
            by_task[m.task_id].append(run)
        elif open_runs[k]:
            open_runs[k].pop(0).end = m
    return by_task


def in_flight_at(run: HandlerRun, kill: Kill, grace: float) -> bool:
    """The run was in its process when the drill killed it, its outcome not yet written."""
    if run.start.pid not in kill.pids or run.start.at >= kill.gone_at:
        return False
    return run.end is None or run.end.at >= kill.at - grace


def check(
    ledger: dict[str, Expectation],
    rows: dict[str, RowState],
    marks: list[Mark],
    kills: list[Kill],
    faults: list[Fault] = (),
    flush_grace: float = FLUSH_GRACE_S,
    t0: float = 0.0,
) -> Findings:
    f = Findings()
    f.statuses = dict(Counter(r.status for r in rows.values()))
    runs = runs_by_task(marks)
    f.starts = sum(1 for m in marks if m.mark == "S")
    _check_rows(f, ledger, rows, runs)
    _check_attempts(f, marks)
    _check_duplicates(f, ledger, runs, kills, flush_grace)
    in_flight = [
        run
        for kill in kills
        for task_runs in runs.values()
        for run in task_runs
        if in_flight_at(run, kill, flush_grace)
    ]
    f.in_flight_at_kills = len(in_flight)
    f.ended_in_flight_at_kills = sum(1 for run in in_flight if run.end is not None)
    errors = Counter(m.how for m in marks if m.mark == "E" and m.how.startswith("error:"))
    f.unplanned_errors = dict(errors)
    f.recoveries = [_recovery(fault, rows) for fault in faults]
    f.longest_silence = _longest_silence(marks, t0)
    examples = [t for t, _ in f.lost[:3]] + [t for t, _ in list(f.attempts_twice)[:3]]
    examples += [t for t, _, _ in f.stray[:3]] + [t for t, _, _ in f.wrong_status[:3]]
    examples += f.non_terminal_ids[:3]
    f.timelines = {t: _timeline(runs.get(t, []), t0) for t in dict.fromkeys(examples)}
    return f


def _longest_silence(marks: list[Mark], t0: float) -> tuple[float, float]:
    """The longest gap between handler ends from ``t0`` on: how long the whole stack, not just
    the work one fault hit, made no progress. (length, start) in seconds."""
    ends = sorted(m.at for m in marks if m.mark == "E" and m.at >= t0)
    gaps = [(b - a, a - t0) for a, b in zip([t0, *ends], ends, strict=False)]
    return max(gaps, default=(0.0, 0.0))


def _timeline(task_runs: list[HandlerRun], t0: float) -> list[str]:
    """``attempt 1 pid 42 t+3.20 → t+3.25 ok`` per start (seconds from ``t0``)."""
    lines = []
    for run in task_runs:
        s = run.start
        end = f"t+{run.end.at - t0:.2f} {run.end.how}" if run.end else "no end"
        lines.append(f"attempt {s.attempt} pid {s.pid} t+{s.at - t0:.2f} → {end}")
    return lines


def _check_rows(
    f: Findings, ledger: dict[str, Expectation], rows: dict[str, RowState], runs: dict
) -> None:
    for task_id, expected in ledger.items():
        row = rows.get(task_id)
        if row is None:
            f.lost.append((task_id, "no row"))
        elif row.status in ACTIVE:
            continue  # counted below, whoever scheduled it
        elif row.status not in expected.allowed:
            f.wrong_status.append((task_id, expected.kind, row.status))
    for row in rows.values():
        if row.status in ACTIVE:
            f.non_terminal[row.status] = f.non_terminal.get(row.status, 0) + 1
            f.non_terminal_ids.append(row.id)
        elif row.status == "completed" and (row.id in ledger or row.kind):
            started = {r.start.attempt for r in runs.get(row.id, [])}
            if row.attempt not in started:
                f.lost.append((row.id, f"completed as attempt {row.attempt}, never started"))


def _check_attempts(f: Findings, marks: list[Mark]) -> None:
    counts = Counter((m.task_id, m.attempt) for m in marks if m.mark == "S")
    f.attempts_twice = {k: n for k, n in counts.items() if n > 1}


def _check_duplicates(
    f: Findings, ledger: dict[str, Expectation], runs: dict, kills: list[Kill], grace: float
) -> None:
    for task_id, task_runs in runs.items():
        retried_at = ledger[task_id].retried_at if task_id in ledger else None
        for before, run in zip(task_runs, task_runs[1:], strict=False):
            if before.end is not None and before.end.how in RETRY_ENDS:
                continue  # the task asked for this retry
            if before.end is not None and before.end.how.startswith("error:"):
                continue  # an unplanned handler error: an ordinary retry (counted apart)
            if retried_at is not None and before.start.at < retried_at <= run.start.at:
                continue  # the drill cancelled it and then retried it
            f.duplicates.append((task_id, run.start.attempt))
            killers = [k for k in kills if in_flight_at(before, k, grace) and run.start.at >= k.at]
            if not killers:
                why = "its previous start ended" if before.end else "its previous start never ended"
                f.stray.append((task_id, run.start.attempt, f"{why}, in a process not killed"))


def _recovery(fault: Fault, rows: dict[str, RowState]) -> dict[str, Any]:
    since = fault.back_at if fault.back_at is not None else fault.at
    ends = [rows[t].finished_at if t in rows else None for t in fault.affected]
    seconds = None
    if all(e is not None for e in ends):
        seconds = max([0.0, *(e - since for e in ends)])
    return {
        "kind": fault.kind,
        "at": fault.at,
        "affected": len(fault.affected),
        "seconds": None if seconds is None else round(seconds, 2),
    }


def summary(f: Findings, examples: int = 10) -> dict[str, Any]:
    """The findings as JSON-ready figures, with a few examples of each violation."""
    slowest = f.slowest_recovery
    return {
        "ok": f.ok,
        "statuses": f.statuses,
        "handler_starts": f.starts,
        "lost": len(f.lost),
        "lost_examples": f.lost[:examples],
        "wrong_final_status": len(f.wrong_status),
        "wrong_final_status_by": dict(Counter(f"{k}→{s}" for _, k, s in f.wrong_status)),
        "wrong_final_status_examples": f.wrong_status[:examples],
        "attempts_started_twice": len(f.attempts_twice),
        "attempts_started_twice_examples": [
            [t, a, n] for (t, a), n in list(f.attempts_twice.items())[:examples]
        ],
        "left_non_terminal": sum(f.non_terminal.values()),
        "left_non_terminal_by_status": f.non_terminal,
        "left_non_terminal_examples": f.non_terminal_ids[:examples],
        "duplicate_starts": len(f.duplicates),
        "attempts_in_flight_at_kills": f.in_flight_at_kills,
        "of_which_ended_within_flush_grace": f.ended_in_flight_at_kills,
        "stray_duplicate_starts": len(f.stray),
        "stray_examples": list(dict.fromkeys(f.stray))[:examples],
        "unplanned_handler_errors": f.unplanned_errors,
        "example_timelines": f.timelines,
        "slowest_recovery_s": None if slowest is None or math.isinf(slowest) else slowest,
        "longest_silence_s": round(f.longest_silence[0], 2),
        "longest_silence_from_s": round(f.longest_silence[1], 2),
        "faults_never_recovered": sum(1 for r in f.recoveries if r["seconds"] is None),
        "recoveries": f.recoveries,
    }
