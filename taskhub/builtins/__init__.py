"""Domain-free built-in tasks."""

from . import http, maintenance, ping  # noqa: F401
