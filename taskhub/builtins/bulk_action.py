"""``taskhub.bulk_action``: a retry, cancel or delete by filter too large for a web request.

The API and the admin schedule it (taskhub/console/bulk_jobs.py says when and with what); it
calls taskhub.console.bulk.run with the filter, count time (``as_of``) and confirmed count they
took, reports progress after each batch, stops at a batch boundary when the task is cancelled,
and returns the counts (``matched``, ``eligible``, ``acted``, ``skipped``).

Tried once (``max_attempts=1``): a partial action keeps its committed batches and its audit
record says ``interrupted``; running it again on its own could act on rows the operator never
confirmed, so the operator decides. Internal (``external=False``): nobody schedules it through the
API, the CLI or the admin's task forms, which would bypass the action's role check.
"""

from ..definitions.registry import task

#: Seconds the action may run: hours of batches for millions of rows, not DEFAULT_TIMEOUT.
TIMEOUT = 6 * 3600


@task("taskhub.bulk_action", queue="default", max_attempts=1, timeout=TIMEOUT, external=False)
def bulk_action(payload: dict, ctx) -> dict:
    """Retry, cancel or delete every task a filter matched (scheduled by the API or the admin
    above BULK_ACTION_INLINE_MAX eligible tasks); returns the counts."""
    # Imported on use: Django imports this package (an installed app) before any model can load.
    from ..console.admin import matching_tasks
    from ..console.bulk_jobs import run_scheduled

    def progress(visited: int, matched: int) -> None:
        ctx.set_progress(100.0 * visited / matched if matched else 100.0)
        ctx.check_cancelled()  # an operator's cancel stops it between two batches

    return run_scheduled(payload, admin_tasks=matching_tasks, progress=progress)
