"""``manage.py taskhub tasks retry|cancel|delete --status S --queue Q --name N …``: an operator
action on every task a filter matches (taskhub.console.bulk). It prints the count, asks before
acting (``--yes`` does not), draws a progress bar on stderr while it acts, and is recorded in the
audit log as ``cli``. The filter is the API's task list filter, validated by its serializer."""

from __future__ import annotations

import sys
from typing import Any

from ..console import bulk
from ..console.api.serializers import BulkTaskFilterSerializer
from ..console.task_filters import filtered_tasks, selects_everything
from ..models import TaskStatus
from .subcommands import fail, progress_bar, subcommand

#: The filter's keys (TaskFilterSerializer's) as their options are spelled here.
_OPTIONS = {
    "status": "--status",
    "queue": "--queue",
    "task": "--name",
    "correlation_id": "--correlation-id",
    "user_id": "--user-id",
    "created_after": "--created-after",
    "created_before": "--created-before",
}
_DONE = {"retry": "retried", "cancel": "cancelled", "delete": "deleted"}


def _args(p) -> None:
    p.add_argument("action", choices=list(bulk.ACTIONS))
    p.add_argument(
        "--status",
        action="append",
        default=[],
        help=f"repeat or comma-separate: {', '.join(TaskStatus.values)}",
    )
    p.add_argument("--queue")
    p.add_argument("--name", help="task name, e.g. taskhub.ping")
    p.add_argument("--correlation-id")
    p.add_argument("--user-id")
    p.add_argument("--created-after", metavar="ISO8601", help="created at or after")
    p.add_argument("--created-before", metavar="ISO8601", help="created before")
    p.add_argument("--all", action="store_true", help="with no filter: act on every task")
    p.add_argument("--dry-run", action="store_true", help="only print the count")
    p.add_argument("--yes", "-y", action="store_true", help="act without asking")
    p.add_argument(
        "--batch", type=int, help="rows per transaction (default: TASKHUB BULK_ACTION_BATCH)"
    )


def _filters(args) -> dict[str, Any]:
    given = {
        "status": ",".join(args.status) or None,
        "queue": args.queue,
        "task": args.name,
        "correlation_id": args.correlation_id,
        "user_id": args.user_id,
        "created_after": args.created_after,
        "created_before": args.created_before,
    }
    serializer = BulkTaskFilterSerializer(data={k: v for k, v in given.items() if v is not None})
    if not serializer.is_valid():
        problems = "; ".join(
            f"{_OPTIONS.get(field, field)}: {' '.join(str(m) for m in messages)}"
            for field, messages in serializer.errors.items()
        )
        raise fail(problems)
    return dict(serializer.validated_data)


@subcommand(
    "tasks",
    "retry, cancel or delete every task a filter matches: counted and confirmed first, audited",
    _args,
)
def tasks(args) -> int | None:
    if args.batch is not None and args.batch < 1:
        raise fail("--batch must be at least 1")
    filters = _filters(args)
    matching = filtered_tasks(filters)
    if selects_everything(matching) and not args.all:
        raise fail(
            "no filter given: this would act on every task; pass --all if that is what you mean"
        )
    counted = bulk.count(args.action, matching)
    done = _DONE[args.action]
    sys.stdout.write(
        f"{counted.matched} tasks match; {counted.eligible} can be {done}, "
        f"{counted.matched - counted.eligible} skipped\n"
        f"({args.action} acts on {bulk.RULES[args.action]})\n"
    )
    if args.dry_run or counted.eligible == 0:
        return None
    asked = not args.yes
    if asked:
        if not sys.stdin.isatty():
            raise fail(
                f"not asking for confirmation without a terminal: pass --yes to {args.action}"
            )
        answer = input(f"{args.action.capitalize()} {counted.eligible} tasks? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            sys.stdout.write("nothing changed\n")
            return 1
    shown = [0]

    def progress(visited: int, total: int) -> None:
        shown[0] = visited
        progress_bar(visited, total)

    try:
        result = bulk.run(
            args.action,
            matching,
            user=None,
            source="cli",
            filters={**filters, **({"all": True} if args.all else {})},
            # What the operator confirmed: a count changed while they read it stops the action.
            expected_count=counted.matched if asked else None,
            as_of=counted.as_of,
            batch=args.batch,
            progress=progress,
        )
    except bulk.CountChanged as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    if shown[0] < result.matched:
        sys.stderr.write("\n")  # rows gone meanwhile: the bar never reached its end
    sys.stdout.write(f"{done} {result.acted} tasks; {result.skipped} skipped\n")
    return None
