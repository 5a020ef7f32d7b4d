"""Named priorities; names or numbers are accepted everywhere, higher runs first."""

from __future__ import annotations

from ..errors import InvalidTaskRequest

PRIORITIES: dict[str, int] = {
    "critical": 10,
    "high": 5,
    "normal": 0,
    "low": -5,
    "deferred": -10,
}
MIN_PRIORITY, MAX_PRIORITY = -100, 100


def parse_priority(value: str | int | None, default: int = 0) -> int:
    """Return the numeric priority for a name or number, or raise InvalidTaskRequest."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise InvalidTaskRequest("priority must be a name or a whole number", field="priority")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.lower() in PRIORITIES:
        return PRIORITIES[value.lower()]
    elif isinstance(value, str) and value.lstrip("-").isdigit():
        number = int(value)
    else:
        names = ", ".join(PRIORITIES)
        raise InvalidTaskRequest(
            f"unknown priority {value!r}: use one of {names} or a number from "
            f"{MIN_PRIORITY} to {MAX_PRIORITY}",
            field="priority",
        )
    if not MIN_PRIORITY <= number <= MAX_PRIORITY:
        raise InvalidTaskRequest(
            f"priority {number} is out of range {MIN_PRIORITY}..{MAX_PRIORITY}", field="priority"
        )
    return number


def priority_name(value: int) -> str:
    """The name of a numeric priority when it has one, else the number as text."""
    for name, number in PRIORITIES.items():
        if number == value:
            return name
    return str(value)
