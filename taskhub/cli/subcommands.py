"""``manage.py taskhub <subcommand>``: the engine's command line.

Subcommands are registered with :func:`subcommand`, so domain apps add theirs (from their
AppConfig.ready) without the engine importing them. Bad input → a message on stderr, exit 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.management.base import CommandError
from django.core.serializers.json import DjangoJSONEncoder

from ..errors import InvalidTaskRequest, InvalidTransition, TaskNotFound, UnknownTask


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    add_arguments: Callable[[Any], None]
    handle: Callable[[Any], int | None]


SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(name: str, help: str, arguments: Callable[[Any], None] = lambda p: None):
    """Register ``handle(args)`` as ``manage.py taskhub NAME``."""

    def register(handle: Callable[[Any], int | None]) -> Callable[[Any], int | None]:
        SUBCOMMANDS[name] = Subcommand(name, help, arguments, handle)
        return handle

    return register


def fail(message: str) -> CommandError:
    """The error for bad input: printed to stderr by Django, exit code 2."""
    return CommandError(message, returncode=2)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, cls=DjangoJSONEncoder, indent=2) + "\n")


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"{what} is not valid JSON: {exc}") from None


def progress_bar(done: int, total: int) -> None:
    """Draw ``done``/``total`` as one line on stderr, redrawn in place (``\\r``); the line ends
    once ``done`` reaches ``total``."""
    width = 30
    filled = width * min(done, total) // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def run(args: Any) -> int | None:
    try:
        return SUBCOMMANDS[args.subcommand].handle(args)
    except (InvalidTaskRequest, UnknownTask, TaskNotFound, InvalidTransition) as exc:
        raise fail(str(exc)) from None
