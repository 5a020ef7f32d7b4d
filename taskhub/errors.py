"""Exceptions callers and handlers use."""


class TaskhubError(Exception):
    """Base class for taskhub's own errors."""


class InvalidTaskRequest(TaskhubError, ValueError):
    """A request to schedule work was refused; nothing was stored or sent.

    ``field`` names what was wrong (``task``, ``payload``, ``priority`` …) and ``errors`` holds
    field-level details for APIs that report them.
    """

    def __init__(self, message: str, *, field: str = "", errors: dict | None = None):
        super().__init__(message)
        self.field = field
        self.errors = errors or ({field: [message]} if field else {"non_field_errors": [message]})


class UnknownTask(InvalidTaskRequest):
    """No task is registered under that name."""


class TaskNotFound(TaskhubError, LookupError):
    """No task row has that id."""


class InvalidTransition(TaskhubError):
    """The task is not in a state that allows the requested operation."""


class PermanentError(TaskhubError):
    """Raised by a handler for a failure that retrying cannot fix: the task fails at once."""


class TaskCancelled(TaskhubError):
    """Raised at a handler's checkpoint when an operator cancelled the running task."""
