"""Which task type stands behind each established ``POST /api/task-queue/<kind>`` endpoint.

- ``email`` → ``email.send`` (taskhub.builtins.mail)
- ``image-processing`` → ``image.process`` (taskhub.builtins.images)
- ``blockchain-event`` → ``blockchain.handle_event`` (the blockchain app)
- ``notification`` → ``notifications.deliver`` (the notifications app)
- ``analytics`` → ``analytics.track`` (taskhub.builtins.analytics)

Each is a real registered task whose pydantic schema validates the request body before anything
is stored. They are looked up by name, so the engine never imports the domain apps that own two
of them; a project without one of those apps (any project but this repository's) has no such
endpoint: ``installed_kinds`` leaves it out of the URLs.
"""

from __future__ import annotations

from ..definitions.registry import TaskDefinition, all_definitions, get_definition

#: endpoint suffix → task name
QUEUE_API_TASKS = {
    "email": "email.send",
    "image-processing": "image.process",
    "blockchain-event": "blockchain.handle_event",
    "notification": "notifications.deliver",
    "analytics": "analytics.track",
}


def definition_for(kind: str) -> TaskDefinition:
    """The task definition behind /api/task-queue/<kind> (UnknownTask if not installed)."""
    return get_definition(QUEUE_API_TASKS[kind])


def installed_kinds() -> list[str]:
    """The kinds whose task this process has registered (the URLs are built after every app's
    ``tasks`` module was imported, in ``TaskhubConfig.ready``)."""
    registered = all_definitions()
    return [kind for kind, name in QUEUE_API_TASKS.items() if name in registered]
