"""The engine's subcommands of ``manage.py taskhub``."""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from ..console import services
from ..console.roles import (
    GROUPS,
    ROLES,
    create_user,
    ensure_role_groups,
    permission_name,
    rotate_token,
)
from ..console.search_indexes import (
    SearchIndexesUnsupported,
    create_search_indexes,
    drop_search_indexes,
    index_states,
)
from ..definitions.payloads import redact
from ..definitions.registry import all_definitions, get_external_definition
from ..engine.broker import ensure_redis
from ..engine.enqueue import schedule, schedule_many
from ..engine.leadership import DispatcherCandidate, standalone_holder
from ..engine.pruner import prune_finished_tasks
from ..errors import InvalidTaskRequest, MissingExtra, import_extra
from . import probes  # noqa: F401  (probes registers `taskhub health`)
from .launcher import Stack
from .process import run_until_signalled
from .subcommands import fail, parse_json, print_json, progress_bar, subcommand


def _enqueue_args(p) -> None:
    p.add_argument("name", help="task name, e.g. taskhub.ping")
    p.add_argument("--payload", default="{}", help="JSON object")
    p.add_argument("--from-file", help="JSONL file, one payload per line (bulk backfill)")
    p.add_argument("--priority")
    p.add_argument("--delay", type=float)
    p.add_argument("--max-attempts", type=int)
    p.add_argument("--dedup-key")
    p.add_argument("--correlation-id")
    p.add_argument("--user-id")


def _read_jsonl(path: str) -> list[Any]:
    payloads = []
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            payloads.append(parse_json(line, f"line {number}"))
    return payloads


@subcommand("enqueue", "schedule a task (or a JSONL file of them); prints the id(s)", _enqueue_args)
def enqueue(args) -> None:
    get_external_definition(args.name)  # an internal task is the application's to schedule
    options = dict(
        priority=args.priority,
        delay=args.delay,
        max_attempts=args.max_attempts,
        correlation_id=args.correlation_id,
        user_id=args.user_id,
    )
    if args.from_file:
        payloads = _read_jsonl(args.from_file)
        try:
            # Validate the whole file first: a bad line rejects it all, naming the line.
            rows = schedule_many(args.name, payloads, **options)
        except InvalidTaskRequest as exc:
            raise fail(_with_line_number(str(exc), args.from_file)) from None
        for done, row in enumerate(rows, start=1):
            sys.stdout.write(f"{row.id}\n")
            if done % 500 == 0 or done == len(rows):
                progress_bar(done, len(rows))
        return
    payload = parse_json(args.payload, "--payload")
    row = schedule(args.name, payload, dedup_key=args.dedup_key, **options)
    sys.stdout.write(f"{row.id}\n")


def _with_line_number(message: str, path: str) -> str:
    # schedule_many says "item N"; a file's user thinks in lines. Blank lines are skipped, so map.
    if not message.startswith("item "):
        return message
    index = int(message.split()[1].rstrip(":"))
    with open(path, encoding="utf-8") as handle:
        lines = [n for n, line in enumerate(handle, start=1) if line.strip()]
    return f"{path} line {lines[index]}: " + message.split(": ", 1)[1]


def task_as_json(task) -> dict[str, Any]:
    definition = all_definitions().get(task.name)
    return {
        "id": str(task.id),
        "name": task.name,
        "type": task.task_type,
        "queue": task.queue,
        "status": task.status,
        "attempt": task.attempt,
        "max_attempts": task.max_attempts,
        "priority": task.priority,
        "progress": task.progress,
        "payload": redact(definition, task.payload),
        "result": task.result,
        "error": task.error,
        "correlation_id": task.correlation_id,
        "user_id": task.user_id,
        "dedup_key": task.dedup_key,
        "scheduled_at": task.scheduled_at,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "completed_at": task.completed_at,
        "duration": task.duration,
        "events": [
            {"kind": e.kind, "attempt": e.attempt, "at": e.at, "data": e.data}
            for e in task.events.order_by("id")
        ],
    }


@subcommand("show", "print a task and its events as JSON", lambda p: p.add_argument("id"))
def show(args) -> None:
    print_json(task_as_json(services.get_task(args.id)))


def _queue_arg(p) -> None:
    p.add_argument("queue")


@subcommand("pause", "pause a queue: nothing of it starts until resumed", _queue_arg)
def pause(args) -> None:
    services.pause_queue(args.queue)
    sys.stdout.write(f"paused {args.queue}\n")


@subcommand("resume", "resume a paused queue", _queue_arg)
def resume(args) -> None:
    services.resume_queue(args.queue)
    sys.stdout.write(f"resumed {args.queue}\n")


@subcommand("clear", "cancel every waiting task of a queue", _queue_arg)
def clear(args) -> None:
    count = services.clear_queue(args.queue, actor="cli")
    sys.stdout.write(f"cancelled {count} waiting tasks of {args.queue}\n")


@subcommand("cancel", "cancel a task", lambda p: p.add_argument("id"))
def cancel(args) -> None:
    task = services.cancel_task(args.id, actor="cli")
    state = "cancel requested" if task.status == "running" else task.status
    sys.stdout.write(f"{task.id} {state}\n")


@subcommand("retry", "run a failed or cancelled task again", lambda p: p.add_argument("id"))
def retry(args) -> None:
    task = services.retry_task(args.id, actor="cli")
    sys.stdout.write(f"{task.id} {task.status}\n")


@subcommand("stats", "per-queue counts", lambda p: p.add_argument("--json", action="store_true"))
def stats(args) -> None:
    rows = services.queue_stats()
    if args.json:
        print_json(rows)
        return
    columns = [
        "queue",
        "waiting",
        "queued",
        "running",
        "delayed",
        "completed",
        "failed",
        "cancelled",
        "paused",
    ]
    sys.stdout.write(" ".join(f"{c:>10}" for c in columns) + "\n")
    for row in rows:
        sys.stdout.write(" ".join(f"{str(row.get(c, 0)):>10}" for c in columns) + "\n")


def _prune_args(p) -> None:
    p.add_argument("--older-than-days", type=float, help="default: TASKHUB RETENTION_DAYS")


@subcommand("prune", "delete old completed and cancelled tasks", _prune_args)
def prune(args) -> None:
    count = prune_finished_tasks(args.older_than_days)
    sys.stdout.write(f"pruned {count} tasks\n")


@subcommand("dispatcher", "run the dispatcher (and lifeline) in the foreground")
def dispatcher(args) -> None:
    ensure_redis()
    # It contends for the same lease as the workers' embedded candidates: one leads at a time.
    run_until_signalled(DispatcherCandidate(standalone_holder()))


def _up_args(p) -> None:
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--processes", type=int, default=2, help="worker processes")
    p.add_argument("--threads", type=int, default=8, help="threads per worker process")


@subcommand("up", "run the whole stack until Ctrl-C / SIGTERM", _up_args)
def up(args) -> int:
    # The web process is uvicorn (the [server] extra): say so now, not by a child that keeps
    # failing to start.
    try:
        import_extra("uvicorn", extra="server", needed_by="taskhub up (its web process)")
    except MissingExtra as exc:
        raise CommandError(str(exc)) from None
    return Stack(
        host=args.host, port=args.port, processes=args.processes, threads=args.threads
    ).run()


@subcommand(
    "groups",
    "create the ready-made role groups (taskhub viewer, operator, admin) with their permissions",
)
def groups(args) -> None:
    try:
        made = ensure_role_groups()
    except LookupError as exc:  # the permissions are not there before the first migrate
        raise fail(str(exc)) from None
    for index, role in enumerate(ROLES):
        _, created = made[role]
        held = ", ".join(permission_name(r) for r in ROLES[: index + 1])
        sys.stdout.write(f"{GROUPS[role]}: {'created' if created else 'already there'} ({held})\n")


def _search_indexes_args(p) -> None:
    p.add_argument("--drop", action="store_true", help="drop them instead")
    p.add_argument("--status", action="store_true", help="only say which exist")


@subcommand(
    "search-indexes",
    "create (or --drop) the PostgreSQL indexes that make task search fast on a large table",
    _search_indexes_args,
)
def search_indexes(args) -> None:
    try:
        if args.status:
            states = index_states()
        elif args.drop:
            dropped = drop_search_indexes()
            sys.stdout.write(f"dropped: {', '.join(dropped) or 'none were there'}\n")
            return
        else:
            report = lambda line: sys.stderr.write(line + "\n")  # noqa: E731
            built = create_search_indexes(report=report)
            sys.stdout.write(f"built: {', '.join(built) or 'all were there'}\n")
            states = index_states()
    except SearchIndexesUnsupported as exc:
        raise fail(str(exc)) from None
    for name, state in states.items():
        shown = {True: "ready", False: "invalid (run again to rebuild)", None: "absent"}[state]
        sys.stdout.write(f"{name}: {shown}\n")


def _createuser_args(p) -> None:
    p.add_argument("username")
    p.add_argument("--role", choices=ROLES, default="viewer")
    p.add_argument("--email", default="")
    p.add_argument("--password", help="default: a random one, printed once")
    p.add_argument(
        "--rotate-token",
        action="store_true",
        help="for an existing user: replace the API token (the old one stops working)",
    )


@subcommand(
    "createuser",
    "create a console user with a role (viewer, operator, admin: joins its ready-made group); "
    "prints an API token",
    _createuser_args,
)
def createuser(args) -> None:
    if not args.username.strip():
        raise fail("username must not be empty")
    existed = get_user_model().objects.filter(username=args.username).exists()
    try:
        user, password, token = create_user(
            args.username, args.role, password=args.password, email=args.email
        )
    except LookupError as exc:  # the role permissions are not there before the first migrate
        raise fail(str(exc)) from None
    token_note = ""
    if existed and args.rotate_token:
        token = rotate_token(user)
        token_note = " (rotated: the old token no longer works)"
    elif existed:
        token_note = " (existing token kept; --rotate-token replaces it)"
    shown = password if not args.password else "(as given)"
    sys.stdout.write(
        f"user: {user.get_username()}{' (existing user updated)' if existed else ''}\n"
        f"role: {args.role}\npassword: {shown}\ntoken: {token}{token_note}\n"
    )
