"""The chaos run's workload: a feeder that schedules a seeded mix of task kinds at a steady rate
(no-ops, slow ones, failing-then-succeeding ones, ones cancelled mid-way — half of them retried
afterwards —, ones returning NUL-laden results, and small workflows), and a steerer that
cancels and retries. Every id the engine returned goes in the ledger with what is expected of it.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
import uuid
from collections import Counter
from typing import Any

from django.db import connection

from .chaos_check import Expectation

logger = logging.getLogger("bench")
TASK = "bench.chaos.work"
#: Share of the tasks per kind ("workflow" counts the steps of runs of WORKFLOW_STEPS).
MIX = {"noop": 0.65, "slow": 0.02, "flaky": 0.10, "cancel": 0.05, "nul": 0.03, "workflow": 0.15}
FAN_OUT = 5
WORKFLOW_STEPS = FAN_OUT + 2  # root, the fan-out, the fan-in
TICK_S = 0.5
#: A cancel lands this long after the row shows ``running`` (mid-way through its handler), or
#: when it has not started within CANCEL_WAIT_S of being scheduled, while it waits.
CANCEL_AFTER_S = (0.2, 2.0)
CANCEL_WAIT_S = 10.0
CANCEL_RUNS_S = 5.0  # a cancellable task runs this long unless cancelled
EITHER = frozenset({"cancelled", "completed"})


class Load:
    def __init__(self, rng: random.Random, rate: float, tag: str, leave_out: frozenset[str]):
        self.rng, self.rate, self.tag = rng, rate, tag
        self.mix = {k: w for k, w in MIX.items() if k not in leave_out}
        self.ledger: dict[str, Expectation] = {}
        self.workflow_runs: list[str] = []
        self.failed_calls: list[dict[str, Any]] = []
        self.cancels: Counter[str] = Counter()
        self.scheduled = 0
        self._owed_steps = 0.0
        self._due_cancels: list[tuple[float, str, bool]] = []
        self._to_cancel: dict[str, tuple[float, bool]] = {}  # until it runs: id → (deadline, retry)
        self._to_retry: set[str] = set()
        self._lock = threading.Lock()
        self.stop_feeding = threading.Event()
        self.stop_steering = threading.Event()  # finish what is pending, then stop
        self.abandon = threading.Event()  # stop now (the drain is over)

    # -- feeding --------------------------------------------------------------------------------
    def feed(self, started: float, seconds: float) -> None:
        try:
            while not self.stop_feeding.is_set():
                elapsed = min(time.time() - started, seconds)
                owed = int(self.rate * elapsed) - self.scheduled
                if owed > 0:
                    self._schedule(owed)
                if elapsed >= seconds:
                    return
                self.stop_feeding.wait(TICK_S)
        finally:
            connection.close()

    def _schedule(self, count: int) -> None:
        kinds = Counter(self.rng.choices(list(self.mix), weights=list(self.mix.values()), k=count))
        for kind, n in sorted(kinds.items()):
            if kind == "workflow":
                self._owed_steps += n
                while self._owed_steps >= WORKFLOW_STEPS:
                    self._owed_steps -= WORKFLOW_STEPS
                    self._call("workflow", WORKFLOW_STEPS, self._start_workflow)
            else:
                payloads = [self._payload(kind) for _ in range(n)]
                self._call(kind, n, lambda k=kind, p=payloads: self._schedule_many(k, p))

    def _call(self, kind: str, count: int, call) -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 — recorded; the rows it may have left are checked
            self.failed_calls.append(
                {
                    "kind": kind,
                    "count": count,
                    "at": time.time(),
                    "error": f"{type(exc).__name__}: {exc}"[:200],
                }
            )
            connection.close()
        self.scheduled += count

    def _payload(self, kind: str) -> dict[str, Any]:
        if kind == "slow":
            return {"kind": kind, "seconds": round(self.rng.uniform(0.3, 3.0), 2)}
        if kind == "flaky":
            return {"kind": kind, "fail_times": self.rng.choice((1, 1, 2))}
        if kind == "cancel":
            return {"kind": kind, "seconds": CANCEL_RUNS_S}
        return {"kind": kind}

    def _schedule_many(self, kind: str, payloads: list[dict]) -> None:
        from taskhub import schedule_many

        rows = schedule_many(TASK, payloads, correlation_id=f"{self.tag}:{kind}")
        now = time.time()
        with self._lock:
            for row in rows:
                self.ledger[str(row.id)] = Expectation(kind)
                if kind == "cancel":
                    self._to_cancel[str(row.id)] = (now + CANCEL_WAIT_S, self.rng.random() < 0.5)

    def _start_workflow(self) -> None:
        from taskhub import WorkflowBuilder, start_workflow
        from taskhub.models import Task

        wf = WorkflowBuilder("bench.chaos")
        root = wf.step("root", TASK, {"kind": "step"})
        items = [
            {"kind": "flaky", "fail_times": 1} if self.rng.random() < 0.2 else {"kind": "step"}
            for _ in range(FAN_OUT)
        ]
        leaves = wf.fan_out("leaf", TASK, items, after=root)
        wf.fan_in("total", "bench.chaos.sum", {"group": "leaf"}, after=leaves)
        run = start_workflow(wf.graph, correlation_id=f"{self.tag}:workflow")
        steps = Task.objects.filter(workflow_run_id=run.id).values_list("id", "step_key")
        with self._lock:
            self.workflow_runs.append(str(run.id))
            for task_id, key in steps:
                self.ledger[str(task_id)] = Expectation("sum" if key == "total" else "step")

    # -- steering: cancels, and retries of cancelled tasks -----------------------------------
    def steer(self) -> None:
        last_retry_pass = 0.0
        last_running_pass = 0.0
        try:
            while not self.abandon.is_set() and not (
                self.stop_steering.is_set() and not self.pending_steering()
            ):
                if time.time() - last_running_pass >= 0.25:
                    self._plan_cancels(time.time())
                    last_running_pass = time.time()
                self._cancel_due(time.time())
                if time.time() - last_retry_pass >= 1.0:
                    self._retry_cancelled()
                    last_retry_pass = time.time()
                time.sleep(0.1)
        finally:
            connection.close()

    def pending_steering(self) -> bool:
        with self._lock:
            return bool(self._to_cancel or self._due_cancels or self._to_retry)

    def _plan_cancels(self, now: float) -> None:
        """Give a cancel time to each cancellable task that runs now, or waited too long."""
        from taskhub.models import Task

        with self._lock:
            waiting = dict(self._to_cancel)
        if not waiting:
            return
        try:
            running = {
                str(i)
                for i in Task.objects.filter(id__in=list(waiting), status="running").values_list(
                    "id", flat=True
                )
            }
        except Exception:  # noqa: BLE001 — next pass
            connection.close()
            return
        with self._lock:
            for task_id, (deadline, retry) in waiting.items():
                if task_id in running or now >= deadline:
                    del self._to_cancel[task_id]
                    delay = self.rng.uniform(*CANCEL_AFTER_S) if task_id in running else 0.0
                    heapq.heappush(self._due_cancels, (now + delay, task_id, retry))

    def _cancel_due(self, now: float) -> None:
        from taskhub.console.services import cancel_task
        from taskhub.errors import InvalidTransition

        while True:
            with self._lock:
                if not self._due_cancels or self._due_cancels[0][0] > now:
                    return
                _, task_id, retry = heapq.heappop(self._due_cancels)
            try:
                row = cancel_task(task_id, actor="chaos")
                outcome = "while waiting" if row.status == "cancelled" else "while running"
                self.ledger[task_id].allowed = EITHER
                if retry:
                    with self._lock:
                        self._to_retry.add(task_id)
            except InvalidTransition:
                outcome = "too late"  # it had ended: it must have completed
            except Exception as exc:  # noqa: BLE001 — e.g. the cancel flag not set (Redis away)
                outcome = f"error {type(exc).__name__}"
                self.ledger[task_id].allowed = EITHER
                connection.close()
            self.cancels[outcome] += 1

    def _retry_cancelled(self) -> None:
        from taskhub.console.services import retry_task
        from taskhub.models import Task

        with self._lock:
            ids = list(self._to_retry)
        if not ids:
            return
        try:
            statuses = dict(Task.objects.filter(id__in=ids).values_list("id", "status"))
        except Exception:  # noqa: BLE001 — next pass
            connection.close()
            return
        for task_id in ids:
            status = statuses.get(uuid.UUID(task_id))
            if status == "completed":  # the handler finished before it saw the cancel
                with self._lock:
                    self._to_retry.discard(task_id)
            elif status == "cancelled":
                retried_at = time.time()  # before: its next start may come before we return
                try:
                    retry_task(task_id, actor="chaos")
                except Exception as exc:  # noqa: BLE001 — tried again next pass
                    logger.info("chaos: retry of %s failed: %s", task_id, exc)
                    connection.close()
                    continue
                expectation = self.ledger[task_id]
                expectation.allowed, expectation.retried_at = frozenset({"completed"}), retried_at
                self.cancels["retried after the cancel"] += 1
                with self._lock:
                    self._to_retry.discard(task_id)
