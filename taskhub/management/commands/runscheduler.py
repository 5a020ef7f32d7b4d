"""``manage.py runscheduler``: the scheduler process (crons and stored schedules).

Run one or more (they coordinate through the database); never inside web workers.
"""

from django.core.management.base import BaseCommand

from taskhub.cli.process import run_until_signalled
from taskhub.engine.broker import ensure_redis
from taskhub.scheduler.runner import Scheduler


class Command(BaseCommand):
    help = "Run the taskhub scheduler: fires due cron / interval / one-off schedules as tasks."

    def handle(self, *args, **options):
        ensure_redis()
        run_until_signalled(Scheduler())
