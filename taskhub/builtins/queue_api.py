"""Which task type stands behind each established ``POST /api/task-queue/<kind>`` endpoint.

- ``email`` → ``email.send`` (taskhub.builtins.mail)
- ``image-processing`` → ``image.process`` (taskhub.builtins.images)
- ``blockchain-event`` → ``blockchain.handle_event`` (the blockchain app)
- ``notification`` → ``notifications.deliver`` (the notifications app)

Each is a real registered task whose pydantic schema validates the request body before anything
is stored. They are looked up by name, so the engine never imports the domain apps that own two
of them; a deployment without one of those apps answers that endpoint with an unknown-task 400.
"""

from __future__ import annotations

from ..definitions.registry import TaskDefinition, get_definition

#: endpoint suffix → task name
QUEUE_API_TASKS = {
    "email": "email.send",
    "image-processing": "image.process",
    "blockchain-event": "blockchain.handle_event",
    "notification": "notifications.deliver",
}


def definition_for(kind: str) -> TaskDefinition:
    """The task definition behind /api/task-queue/<kind> (UnknownTask if not installed)."""
    return get_definition(QUEUE_API_TASKS[kind])
