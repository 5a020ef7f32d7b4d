"""Domain-free built-in tasks."""

from . import http, ping  # noqa: F401
