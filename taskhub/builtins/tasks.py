"""Registers the built-in tasks that need Django's apps loaded (discovered in every process)."""

from . import analytics, data, images, mail  # noqa: F401
