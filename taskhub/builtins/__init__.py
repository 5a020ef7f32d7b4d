"""Domain-free built-in tasks."""

from . import http, maintenance, ping, queue_api  # noqa: F401
