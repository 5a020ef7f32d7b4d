"""taskhub.engine.transitions is the one writer of status: each of its functions moves a real row
only from the statuses its table allows (and only for the attempt it names), and no other module of
the source tree writes the status of a task or a workflow run."""

from __future__ import annotations

import ast
import datetime as dt
import re
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from django.utils import timezone

from taskhub.engine import transitions
from taskhub.engine.transitions import RUN_FINISHES, RUN_TRANSITIONS, TASK_TRANSITIONS
from taskhub.errors import InvalidTransition
from taskhub.models import EventKind, Task, TaskEvent, TaskStatus
from taskhub.workflows.models import WorkflowRun, WorkflowStatus

ATTEMPT = 2


def make_task(status: str, *, attempt: int = ATTEMPT) -> Task:
    now = timezone.now()
    return Task.objects.create(
        name="test.noop",
        queue=f"q-{uuid.uuid4().hex[:8]}",
        status=status,
        attempt=attempt,
        max_attempts=5,
        scheduled_at=now - dt.timedelta(seconds=1),
        created_at=now,
        updated_at=now,
    )


def _finish_row(task_id, attempt: int, now: dt.datetime) -> tuple:
    """A completed outcome as transitions.finish takes it."""
    values = {
        "id": task_id,
        "attempt": attempt,
        "status": TaskStatus.COMPLETED,
        "result": None,
        "error": "",
        "traceback": "",
        "started_at": now,
        "completed_at": now,
        "duration": 1.0,
        "scheduled_at": None,
        "progress": 100,
        "worker_id": "w",
        "updated_at": now,
    }
    return tuple(values[column] for column in transitions.FINISH_COLUMNS)


def _call_with_instance(function: Callable[[Task], object]) -> Callable[[Task, int], None]:
    """An operator transition on a model instance: InvalidTransition means "not moved"."""

    def call(task: Task, attempt: int) -> None:
        try:
            function(task)
        except InvalidTransition:
            pass

    return call


# name → (call the transition on ``task`` for ``attempt``, the status it writes,
#         the statuses it may leave (None: its table's), whether it is guarded by attempt)
NOW = timezone.now
CASES: dict[str, tuple[Callable[[Task, int], object], str, tuple | None, bool]] = {
    "mark_queued": (
        lambda t, a: transitions.mark_queued(t.queue, 10, NOW()),
        TaskStatus.QUEUED,
        None,
        False,
    ),
    "unqueue": (
        lambda t, a: transitions.unqueue([(t.id, a)], NOW(), reason="r"),
        TaskStatus.PENDING,
        None,
        True,
    ),
    "mark_running": (
        lambda t, a: transitions.mark_running([(t.id, a, NOW())], "w", NOW()),
        TaskStatus.RUNNING,
        None,
        True,
    ),
    "finish": (
        lambda t, a: transitions.finish([_finish_row(t.id, a, NOW())]),
        TaskStatus.COMPLETED,
        None,
        True,
    ),
    "hand_back": (
        lambda t, a: transitions.hand_back([(t.id, a, None)], NOW(), started=True),
        TaskStatus.PENDING,
        None,
        True,
    ),
    "hand_back (never started here)": (
        lambda t, a: transitions.hand_back([(t.id, a, None)], NOW(), started=False),
        TaskStatus.PENDING,
        (TaskStatus.QUEUED,),
        True,
    ),
    "recover_lost": (
        lambda t, a: transitions.recover_lost([(t.id, a)], [], "lost", NOW()),
        TaskStatus.PENDING,
        None,
        True,
    ),
    "recover_lost (out of attempts)": (
        lambda t, a: transitions.recover_lost([], [(t.id, a)], "lost", NOW()),
        TaskStatus.FAILED,
        TASK_TRANSITIONS["recover_lost"].sources,
        True,
    ),
    "cancel_lost": (
        lambda t, a: transitions.cancel_lost([(t.id, a)], NOW()),
        TaskStatus.CANCELLED,
        None,
        True,
    ),
    "cancel_waiting": (
        lambda t, a: transitions.cancel_waiting([t.id], NOW()),
        TaskStatus.CANCELLED,
        None,
        False,
    ),
    "retry": (
        _call_with_instance(lambda t: transitions.retry(t, NOW(), budget=3)),
        TaskStatus.PENDING,
        None,
        False,
    ),
    "retry (many)": (
        lambda t, a: transitions.retry_many([t.id], NOW()),
        TaskStatus.PENDING,
        None,
        False,
    ),
    "rearm_step": (
        lambda t, a: transitions.rearm_steps([t], NOW()),
        TaskStatus.BLOCKED,
        None,
        False,
    ),
    "release": (
        lambda t, a: transitions.release([(t.id, t.attempt)], NOW()),
        TaskStatus.PENDING,
        None,
        False,
    ),
    "end_blocked": (
        lambda t, a: transitions.end_blocked(
            [(t.id, t.attempt)], TaskStatus.SKIPPED, NOW(), reason="r"
        ),
        TaskStatus.SKIPPED,
        None,
        False,
    ),
}


def _table_name(case: str) -> str:
    return case.split(" (")[0]


def test_every_task_transition_of_the_table_is_exercised():
    covered = {_table_name(c) for c in CASES} | {"insert_new"}
    assert covered == set(TASK_TRANSITIONS)
    for case, (_, target, _, _) in CASES.items():
        assert target in TASK_TRANSITIONS[_table_name(case)].targets, case


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("status", list(TaskStatus))
def test_a_task_transition_moves_a_row_only_from_the_statuses_its_table_allows(case, status):
    call, target, sources, _ = CASES[case]
    sources = sources if sources is not None else TASK_TRANSITIONS[_table_name(case)].sources
    task = make_task(status)

    call(task, ATTEMPT)

    row = Task.objects.get(id=task.id)
    if status in sources:
        assert row.status == target
        expected_attempt = ATTEMPT + 1 if case == "mark_queued" else ATTEMPT
        assert row.attempt == expected_attempt
    else:
        assert (row.status, row.attempt) == (status, ATTEMPT)


@pytest.mark.django_db
@pytest.mark.parametrize("case", [c for c, (_, _, _, by_attempt) in CASES.items() if by_attempt])
def test_a_task_transition_guarded_by_attempt_leaves_another_attempt_alone(case):
    call, _, sources, _ = CASES[case]
    sources = sources if sources is not None else TASK_TRANSITIONS[_table_name(case)].sources
    for status in sources:
        task = make_task(status)
        call(task, ATTEMPT - 1)  # a stale caller: an earlier attempt
        call(task, ATTEMPT + 1)  # and one from the future
        row = Task.objects.get(id=task.id)
        assert (row.status, row.attempt) == (status, ATTEMPT)
        call(task, ATTEMPT)
        assert Task.objects.get(id=task.id).status != status


@pytest.mark.django_db
def test_the_counters_each_transition_promises():
    unqueued = make_task(TaskStatus.QUEUED)
    transitions.unqueue([(unqueued.id, ATTEMPT)], NOW(), reason="r")
    handed = make_task(TaskStatus.RUNNING)
    transitions.hand_back([(handed.id, ATTEMPT, None)], NOW(), started=True)
    retried = make_task(TaskStatus.FAILED)
    transitions.retry(retried, NOW(), budget=3)
    retried_by_filter = make_task(TaskStatus.CANCELLED)
    Task.objects.filter(id=retried_by_filter.id).update(cancel_requested=True, completed_at=NOW())
    transitions.retry_many([retried_by_filter.id], NOW())

    # Not charged: the limit moves up with the attempt handed back.
    assert Task.objects.get(id=unqueued.id).max_attempts == 6
    assert Task.objects.get(id=handed.id).max_attempts == 6
    row = Task.objects.get(id=retried.id)
    assert (row.status, row.max_attempts) == (TaskStatus.PENDING, ATTEMPT + 3)
    # a retry by filter gives each row as many attempts as it had in all (5 here)
    row = Task.objects.get(id=retried_by_filter.id)
    assert (row.status, row.max_attempts, row.cancel_requested) == (
        TaskStatus.PENDING,
        ATTEMPT + 5,
        False,
    )
    assert row.completed_at is None


@pytest.mark.django_db
def test_the_transitions_that_record_their_events_record_them():
    unqueued, lost = make_task(TaskStatus.QUEUED), make_task(TaskStatus.RUNNING)
    released, skipped = make_task(TaskStatus.BLOCKED), make_task(TaskStatus.BLOCKED)

    transitions.unqueue([(unqueued.id, ATTEMPT)], NOW(), reason="broker unavailable")
    transitions.cancel_lost([(lost.id, ATTEMPT)], NOW())
    transitions.release([(released.id, ATTEMPT)], NOW())
    transitions.end_blocked([(skipped.id, ATTEMPT)], TaskStatus.SKIPPED, NOW(), reason="rule")

    def events(task: Task) -> list[tuple]:
        return list(TaskEvent.objects.filter(task_id=task.id).values_list("kind", "attempt"))

    assert events(unqueued) == [(EventKind.RECOVERED, ATTEMPT)]
    assert events(lost) == [(EventKind.CANCELLED, ATTEMPT)]
    assert events(released) == [(EventKind.RELEASED, ATTEMPT)]
    assert events(skipped) == [(EventKind.SKIPPED, ATTEMPT)]


def test_insert_new_is_pending_unless_it_waits():
    assert transitions.insert_new(Task(), waiting=False).status == TaskStatus.PENDING
    assert transitions.insert_new(Task(), waiting=True).status == TaskStatus.BLOCKED


@pytest.mark.django_db
def test_a_target_or_source_outside_the_table_is_refused_and_writes_nothing():
    task = make_task(TaskStatus.RUNNING)
    with pytest.raises(ValueError):
        transitions.finish(
            [
                (
                    *_finish_row(task.id, ATTEMPT, NOW())[:2],
                    TaskStatus.PENDING,
                    *_finish_row(task.id, ATTEMPT, NOW())[3:],
                )
            ]
        )
    with pytest.raises(ValueError):
        transitions.end_blocked([(task.id, ATTEMPT)], TaskStatus.PENDING, NOW(), reason="r")
    with pytest.raises(ValueError):
        transitions.cancel_waiting([task.id], NOW(), sources=[TaskStatus.RUNNING])
    assert Task.objects.get(id=task.id).status == TaskStatus.RUNNING


# -- workflow runs -------------------------------------------------------------------------------
RUN_CASES = [
    (name, to, status)
    for name, transition in RUN_TRANSITIONS.items()
    if transition.sources
    for to in transition.targets
    for status in WorkflowStatus
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "to", "status"), RUN_CASES)
def test_a_run_transition_moves_a_run_only_from_the_statuses_its_table_allows(name, to, status):
    now = timezone.now()
    run = WorkflowRun.objects.create(name="wf", status=status, created_at=now, updated_at=now)
    allowed = status in RUN_TRANSITIONS[name].sources
    if name == "finish":
        allowed = allowed and to in RUN_FINISHES[status]

    if allowed:
        transitions.move_run(run, name, to, now)
    else:
        with pytest.raises(InvalidTransition):
            transitions.move_run(run, name, to, now)

    assert WorkflowRun.objects.get(id=run.id).status == (to if allowed else status)


@pytest.mark.django_db
def test_a_run_transition_checks_the_row_not_only_the_instance():
    now = timezone.now()
    run = WorkflowRun.objects.create(
        name="wf", status=WorkflowStatus.SUCCEEDED, created_at=now, updated_at=now
    )
    run.status = WorkflowStatus.RUNNING  # a stale instance
    with pytest.raises(InvalidTransition):
        transitions.move_run(run, "cancel", WorkflowStatus.CANCELLING, now)
    assert WorkflowRun.objects.get(id=run.id).status == WorkflowStatus.SUCCEEDED


# -- nobody else writes a status -----------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("taskhub", "payments", "kyc", "webhooks", "notifications", "blockchain")
OWNER = ROOT / "taskhub" / "engine" / "transitions.py"
_MODELS = {"Task", "WorkflowRun"}
_STATUS_ENUMS = {"TaskStatus", "WorkflowStatus"}
_ORM_WRITES = {"update", "bulk_update", "create", "update_or_create", "get_or_create"}
#: SQL that sets a status column: ``SET status =`` or ``status = v.status`` (a batched update).
_SQL_STATUS_WRITE = re.compile(r"(?i)\bset\s+status\s*=|\bstatus\s*=\s*v\.status\b")


def _root_name(node: ast.AST) -> str | None:
    """The name a chain like ``Task.objects.filter(...).update`` starts from."""
    while True:
        if isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            return node.id if isinstance(node, ast.Name) else None


def _mentions_status_enum(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id in _STATUS_ENUMS for n in ast.walk(node))


def _holds_status_string(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Constant) and n.value == "status" for n in ast.walk(node))


def _is_status_attribute(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "status"


def _assigned_status(node: ast.Assign) -> bool:
    """``x.status = TaskStatus.…`` (also inside a tuple assignment)."""
    for target in node.targets:
        pairs = (
            zip(target.elts, node.value.elts, strict=False)
            if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
            else [(target, node.value)]
        )
        for name, value in pairs:
            if _is_status_attribute(name) and _mentions_status_enum(value):
                return True
    return False


def _call_writes_status(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    keywords = {k.arg for k in node.keywords}
    if name in _MODELS and "status" in keywords:  # Task(status=…), WorkflowRun(status=…)
        return True
    if name == "setattr" and len(node.args) > 1 and _holds_status_string(node.args[1]):
        return True
    if name in _ORM_WRITES and _root_name(func) in _MODELS:
        unpacked = None in keywords  # update(**fields): what it writes is not visible here
        listed = any(_holds_status_string(a) for a in node.args)  # bulk_update(rows, fields)
        return "status" in keywords or unpacked or listed
    return False


def _bound_to(function: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, set[str]]:
    """What each local name of ``function`` is bound from: the name a call chain assigned to
    it starts with (``ScheduleRun.objects.create(…)`` → ScheduleRun), or its annotation."""
    bound: dict[str, set[str]] = {}
    for arg in [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]:
        if arg.annotation is not None:
            annotation = ast.unparse(arg.annotation).strip("'\"")
            bound.setdefault(arg.arg, set()).add(annotation.split(" ")[0])
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            root = _root_name(node.value)
            for target in node.targets:
                if isinstance(target, ast.Name) and root:
                    bound.setdefault(target.id, set()).add(root)
    return bound


def _saves_status(tree: ast.AST, imports_models: bool) -> list[int]:
    """``x.save(update_fields=[…"status"…])`` in a module that imports Task or WorkflowRun,
    unless ``x`` is bound in its function from another model (a ScheduleRun, say)."""
    lines = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        bound = _bound_to(function)
        for node in ast.walk(function):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "save"
                and any(
                    k.arg == "update_fields" and _holds_status_string(k.value)
                    for k in node.keywords
                )
            ):
                continue
            receiver = node.func.value
            roots = bound.get(receiver.id, set()) if isinstance(receiver, ast.Name) else set()
            other_model = roots and not roots & _MODELS and all(r[:1].isupper() for r in roots)
            if imports_models and not other_model:
                lines.append(node.lineno)
    return sorted(set(lines))


def status_writes(path: Path) -> list[str]:
    """Where ``path`` writes the status of a task or a workflow run (other than by calling
    taskhub.engine.transitions): ORM writes of a ``status`` field through ``Task``/``WorkflowRun``,
    a ``.status`` assigned a TaskStatus/WorkflowStatus, ``save(update_fields=[…"status"…])``
    of a task or run, and SQL setting a status column."""
    tree = ast.parse(path.read_text(), filename=str(path))
    imported = {
        a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names
    }
    lines = _saves_status(tree, bool(imported & _MODELS))
    for node in ast.walk(tree):
        hit = (
            (isinstance(node, ast.Assign) and _assigned_status(node))
            or (isinstance(node, ast.Call) and _call_writes_status(node))
            or (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _SQL_STATUS_WRITE.search(node.value) is not None
            )
        )
        if hit:
            lines.append(node.lineno)
    return [f"{path.relative_to(ROOT)}:{line}" for line in sorted(lines)]


def _source_files() -> list[Path]:
    files = []
    for package in SCANNED:
        files += [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    return files


def test_no_module_but_transitions_writes_a_task_or_run_status():
    files = _source_files()
    assert OWNER in files and len(files) > 100  # it does scan the tree
    assert status_writes(OWNER)  # and it sees the writes where they are

    writes = [w for f in files if f != OWNER for w in status_writes(f)]

    assert writes == []


PLANTED = """
from django.db.models import F
from taskhub.models import EventKind, Task, TaskEvent, TaskStatus
from taskhub.workflows.models import WorkflowRun, WorkflowStatus

def planted(task, run: WorkflowRun, now, fields):
    Task.objects.filter(id=task.id).update(status=TaskStatus.CANCELLED)
    Task.objects.filter(id=task.id).update(**fields)
    Task.objects.bulk_update([task], ["status", "updated_at"])
    task.status, task.updated_at = TaskStatus.PENDING, now
    run.status = WorkflowStatus.FAILED
    run.save(update_fields=["status", "updated_at"])
    setattr(task, "status", "failed")
    Task(name="x", status=TaskStatus.BLOCKED)
    WorkflowRun.objects.filter(id=run.id).update(status="failed")
    sql = "UPDATE taskhub_task SET status = 'queued' WHERE id = %s"
    batch = "status = v.status, updated_at = v.updated_at"
"""


def test_the_scan_finds_a_planted_status_write(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    planted = tmp_path / "planted.py"
    planted.write_text(PLANTED)

    lines = sorted(int(w.rsplit(":", 1)[1]) for w in status_writes(planted))

    assert lines == list(range(7, 18))
