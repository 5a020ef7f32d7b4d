"""``manage.py taskhub``: enqueue, show, stats, pause, … (see ``manage.py taskhub --help``)."""

from argparse import Namespace

from django.core.management.base import BaseCommand

from taskhub.cli import (  # noqa: F401  (register the subcommands)
    bulk_commands,
    commands,
    schedule_commands,
    watch,
    workflow_commands,
)
from taskhub.cli.subcommands import SUBCOMMANDS, run


class Command(BaseCommand):
    help = "taskhub: schedule, inspect and steer background tasks; run the stack."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        for spec in SUBCOMMANDS.values():
            spec.add_arguments(sub.add_parser(spec.name, help=spec.help))

    def handle(self, *args, **options):
        code = run(Namespace(**options))
        if code:
            raise SystemExit(code)
