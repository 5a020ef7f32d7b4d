"""Domain-free built-in tasks."""

from . import bulk_action, http, maintenance, ping, queue_api  # noqa: F401
