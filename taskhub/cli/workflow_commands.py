"""``manage.py taskhub workflow-start | workflow-show | workflow-list | workflow-cancel |
workflow-retry``: the same service calls as the API, recorded in the audit log as ``cli``."""

from __future__ import annotations

import sys

from ..console.audit import audited
from ..workflows import operations
from ..workflows.models import WorkflowRun, WorkflowStatus
from ..workflows.start import start_workflow
from .subcommands import fail, parse_json, print_json, subcommand


def _audited(action: str, run_id="", **details):
    return audited(
        None, action, source="cli", target_type="workflow_run", target_id=run_id, **details
    )


def _run(run_id: str) -> WorkflowRun:
    try:
        return operations.get_run(run_id)
    except operations.WorkflowNotFound as exc:
        raise fail(str(exc)) from None


def _start_args(p) -> None:
    p.add_argument("name", help="a workflow registered in Python or a stored definition")
    p.add_argument("--input", default="{}", help="JSON object")
    p.add_argument("--idempotency-key", help="a second start with this key returns the first run")
    p.add_argument(
        "--deadline",
        type=float,
        metavar="SECONDS",
        help="cancel the run if it is still going after this long",
    )
    p.add_argument("--version", type=int, help="a stored definition's version (default: newest)")


@subcommand("workflow-start", "start a workflow run; prints the run id", _start_args)
def workflow_start(args) -> None:
    input = parse_json(args.input, "--input")
    with _audited("workflow.start", definition=args.name) as extra:
        run = start_workflow(
            args.name,
            input,
            idempotency_key=args.idempotency_key,
            deadline=args.deadline,
            version=args.version,
        )
        extra.update(target_id=run.id, created=run.created)
    if not run.created:
        sys.stderr.write(f"a run with idempotency key {args.idempotency_key!r} exists\n")
    sys.stdout.write(f"{run.id}\n")


@subcommand(
    "workflow-show",
    "print a run with its steps, edges and events as JSON",
    lambda p: p.add_argument("id"),
)
def workflow_show(args) -> None:
    run = _run(args.id)
    print_json({**operations.run_detail(run), "events": operations.run_events(run)})


def _list_args(p) -> None:
    p.add_argument(
        "--status", action="append", choices=WorkflowStatus.values, help="repeat for several"
    )
    p.add_argument("--definition", help="workflow name")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")


@subcommand("workflow-list", "list workflow runs, newest first", _list_args)
def workflow_list(args) -> None:
    runs = WorkflowRun.objects.order_by("-created_at")
    if args.status:
        runs = runs.filter(status__in=args.status)
    if args.definition:
        runs = runs.filter(name=args.definition)
    rows = [operations.run_summary(r) for r in runs[: max(args.limit, 0)]]
    if args.json:
        print_json(rows)
        return
    for row in rows:
        sys.stdout.write(
            f"{row['id']}  {row['status']:<19}  {row['definition']} v{row['version']}  "
            f"{row['created_at']}{'  ' + row['error'] if row['error'] else ''}\n"
        )


def _cancel_args(p) -> None:
    p.add_argument("id")
    p.add_argument("--compensate", action="store_true", help="then undo the completed steps")


@subcommand("workflow-cancel", "cancel a running workflow run", _cancel_args)
def workflow_cancel(args) -> None:
    run = _run(args.id)
    with _audited("workflow.cancel", run.id, compensate=args.compensate):
        run = operations.cancel_run(run.id, compensate=args.compensate, actor="cli")
    sys.stdout.write(f"{run.id} {run.status}\n")


@subcommand(
    "workflow-retry",
    "run a failed or cancelled workflow run again from where it stopped",
    lambda p: p.add_argument("id"),
)
def workflow_retry(args) -> None:
    run = _run(args.id)
    with _audited("workflow.retry", run.id):
        run = operations.retry_run(run.id, actor="cli")
    sys.stdout.write(f"{run.id} {run.status}\n")
