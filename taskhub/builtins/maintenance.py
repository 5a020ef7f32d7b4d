"""Maintenance as ordinary tasks on crons: pruning old tasks and recovering stalled ones.

The crons only schedule these tasks; the work runs on workers with retries and history.
"""

from ..conf import taskhub_settings
from ..definitions.registry import task
from ..scheduler.cron import EVERY_5_MINUTES, EVERY_HOUR, cron


@cron(EVERY_HOUR)
@task("taskhub.prune", queue="default", max_attempts=3)
def prune(payload: dict) -> dict:
    """Delete completed/cancelled tasks and schedule runs older than RETENTION_DAYS."""
    # Imported on use: Django imports this package (an installed app) before any model can load.
    from ..engine.pruner import prune_finished_tasks
    from ..scheduler.runs import prune_schedule_runs

    days = payload.get("older_than_days", taskhub_settings.RETENTION_DAYS)
    return {"tasks": prune_finished_tasks(days), "schedule_runs": prune_schedule_runs(days)}


@cron(EVERY_5_MINUTES)
@task("taskhub.recover_stalled", queue="default", max_attempts=1)
def recover_stalled(payload: dict) -> dict:
    """Run the lifeline once (dispatchers run it every few seconds; this is the safety net)."""
    from ..engine.lifeline import Lifeline  # on use, as in prune()

    report = Lifeline().run_once()
    return {
        "lost_attempts": report.lost_attempts,
        "failed": report.failed,
        "redispatched": report.redispatched,
        "dead_workers": len(report.dead_workers),
    }
