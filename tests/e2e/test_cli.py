"""The command line as users and scripts drive it: real `manage.py` processes."""

import json
import signal
import subprocess
import sys
import time

import pytest

from taskhub.models import Task, TaskEvent
from tests.support import ROOT, child_env, free_port, healthz_ok, wait_for

pytestmark = [pytest.mark.e2e]


def taskhub(*args, check=False, stdin=None):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "taskhub", *args],
        cwd=ROOT,
        env=child_env(),
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_enqueue_prints_only_the_new_tasks_id_and_show_prints_it_as_json(e2e):
    out = taskhub(
        "enqueue",
        "taskhub.ping",
        "--payload",
        "{}",
        "--priority",
        "high",
        "--correlation-id",
        "order-7",
        check=True,
    )

    task_id = out.stdout.strip()
    assert out.stdout == f"{task_id}\n"
    wait_for(lambda: Task.objects.get(id=task_id).status == "completed", timeout=15)
    shown = json.loads(taskhub("show", task_id, check=True).stdout)
    assert shown["status"] == "completed" and shown["result"] == "pong"
    assert shown["priority"] == 5 and shown["correlation_id"] == "order-7"
    assert shown["type"] == "other"  # taskhub.ping declares none
    assert [e["kind"] for e in shown["events"]] == ["created", "queued", "started", "completed"]
    for field in (
        "id",
        "name",
        "queue",
        "attempt",
        "max_attempts",
        "progress",
        "error",
        "created_at",
        "started_at",
        "completed_at",
    ):
        assert field in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "nope.task", "--payload", "{}"], "unknown task"),
        (["enqueue", "taskhub.ping", "--payload", "{not json"], "not valid JSON"),
        (["enqueue", "test.sleep", "--payload", '{"seconds": "x"}'], "payload.seconds"),
        (["enqueue", "taskhub.ping", "--priority", "urgent"], "unknown priority"),
        (["enqueue", "taskhub.ping", "--max-attempts", "0"], "max_attempts"),
        (["show", "not-a-uuid"], "no task with id"),
        (["pause", "no-such-queue"], "unknown queue"),
    ],
)
def test_bad_input_exits_2_with_a_message_on_stderr_and_writes_nothing(
    transactional_db, args, message
):
    out = taskhub(*args)

    assert out.returncode == 2
    assert message in out.stderr
    assert out.stdout == ""
    assert Task.objects.count() == 0


def test_enqueue_from_a_jsonl_file_schedules_every_line_in_bulk(transactional_db, tmp_path):
    path = tmp_path / "backfill.jsonl"
    path.write_text("\n".join(json.dumps({"seconds": 0, "label": f"b{i}"}) for i in range(1200)))

    out = taskhub("enqueue", "test.sleep", "--from-file", str(path), check=True)

    ids = out.stdout.split()
    assert len(ids) == 1200 == Task.objects.filter(id__in=ids).count()
    assert "1200/1200" in out.stderr  # the progress bar


def test_a_bad_line_rejects_the_whole_file_naming_its_line(transactional_db, tmp_path):
    path = tmp_path / "backfill.jsonl"
    path.write_text('{"seconds": 0}\n\n{"seconds": 0}\n{"seconds": "soon"}\n')

    out = taskhub("enqueue", "test.sleep", "--from-file", str(path))

    assert out.returncode == 2
    assert "line 4" in out.stderr
    assert Task.objects.count() == 0


def test_stats_pause_resume_clear_and_cancel_from_the_command_line(transactional_db):
    delayed = taskhub("enqueue", "test.noop", "--delay", "600", check=True).stdout.strip()
    waiting = taskhub("enqueue", "test.noop", "--delay", "600", check=True).stdout.strip()

    taskhub("pause", "default", check=True)
    stats = {q["queue"]: q for q in json.loads(taskhub("stats", "--json", check=True).stdout)}
    assert stats["default"]["paused"] is True and stats["default"]["delayed"] == 2
    taskhub("resume", "default", check=True)
    assert "cancelled" in taskhub("cancel", delayed, check=True).stdout
    assert "cancelled 1 waiting" in taskhub("clear", "default", check=True).stdout

    assert Task.objects.get(id=waiting).status == "cancelled"
    stats = {q["queue"]: q for q in json.loads(taskhub("stats", "--json", check=True).stdout)}
    assert stats["default"]["paused"] is False and stats["default"]["cancelled"] == 2


def test_prune_deletes_old_finished_tasks_with_their_history_and_keeps_failures(
    transactional_db,
):
    import datetime as dt

    from django.utils import timezone

    from taskhub import schedule_many

    rows = schedule_many("test.noop", [{}] * 6, delay=3600)  # nothing here may run
    old = timezone.now() - dt.timedelta(days=10)
    statuses = ["completed", "completed", "cancelled", "failed", "completed", "pending"]
    for row, status in zip(rows, statuses, strict=True):
        Task.objects.filter(id=row.id).update(status=status, completed_at=old)
    Task.objects.filter(id=rows[4].id).update(completed_at=timezone.now())

    out = taskhub("prune", check=True)

    assert "pruned 3 tasks" in out.stdout
    remaining = set(Task.objects.values_list("status", flat=True))
    assert remaining == {"failed", "completed", "pending"}
    assert TaskEvent.objects.filter(task_id__in=[r.id for r in rows[:3]]).count() == 0


def test_a_bulk_action_asks_first_and_a_script_must_say_yes(transactional_db):
    from taskhub import schedule_many

    rows = schedule_many("test.noop", [{}] * 3, delay=3600)  # nothing here may run
    Task.objects.filter(id__in=[r.id for r in rows]).update(status="failed")
    flags = ("tasks", "retry", "--status", "failed", "--name", "test.noop")

    unattended = taskhub(*flags, stdin=subprocess.DEVNULL)

    assert unattended.returncode == 2 and "--yes" in unattended.stderr
    assert "3 tasks match" in unattended.stdout
    assert set(Task.objects.values_list("status", flat=True)) == {"failed"}

    done = taskhub(*flags, "--yes", "--batch", "2", check=True)

    assert "retried 3 tasks; 0 skipped" in done.stdout
    assert "3/3" in done.stderr  # the progress bar
    # Pending again — and run at once if this module's worker is up (the e2e fixture's stack)
    assert not Task.objects.filter(status="failed").exists()
    requeued = TaskEvent.objects.filter(task_id__in=[r.id for r in rows], kind="requeued")
    assert sorted(requeued.values_list("task_id", flat=True)) == sorted(r.id for r in rows)


def _descendants(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    children = {int(p) for p in out}
    for child in list(children):
        children |= _descendants(child)
    return children


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_up_runs_the_whole_stack_and_stops_cleanly_with_no_orphans(transactional_db):
    port = free_port()
    up = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "taskhub",
            "up",
            "--port",
            str(port),
            "--processes",
            "1",
            "--threads",
            "2",
        ],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: healthz_ok(port), timeout=60, message="the web server")
        task_id = taskhub("enqueue", "taskhub.ping", "--payload", "{}", check=True).stdout.strip()
        wait_for(
            lambda: json.loads(taskhub("show", task_id).stdout)["status"] == "completed",
            timeout=30,
            interval=0.5,
            message="ping to complete",
        )
        assert json.loads(taskhub("show", task_id).stdout)["result"] == "pong"
        family = _descendants(up.pid)
        assert len(family) >= 3  # web, workers, dispatcher
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
    time.sleep(0.5)
    assert [p for p in family if _alive(p)] == []
