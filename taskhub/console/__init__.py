"""Operator surfaces: the actions every surface calls (services), the Django admin, the REST API,
live event streams, metrics, health, the audit log and roles."""
