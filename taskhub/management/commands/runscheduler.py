"""``manage.py runscheduler``: the scheduler process (crons and stored schedules).

Run one or more (they coordinate through the database); never inside web workers.
"""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the taskhub scheduler: fires due cron / interval / one-off schedules as tasks."

    def handle(self, *args, **options):
        from taskhub.broker import ensure_redis
        from taskhub.process import run_until_signalled
        from taskhub.scheduler import Scheduler

        ensure_redis()
        run_until_signalled(Scheduler())
