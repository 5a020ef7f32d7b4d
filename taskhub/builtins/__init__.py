"""Domain-free built-in tasks."""

from . import http, ping, queue_api  # noqa: F401
