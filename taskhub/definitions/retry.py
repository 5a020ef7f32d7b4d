"""Retry policies: whether attempt n+1 may follow attempt n, and how long to wait for it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol


def has_attempts_left(attempt: int, max_attempts: int) -> bool:
    """The attempt budget, one rule for every way an attempt ends: a failed or timed-out one
    (taskhub.engine.worker) and a lost one (taskhub.engine.lifeline) are followed by another only
    while this holds."""
    return attempt < max_attempts


class RetryPolicy(Protocol):
    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""


@dataclass(frozen=True)
class Schedule:
    """A fixed list of delays; the last one repeats if attempts outnumber it."""

    delays: tuple[float, ...] = (1, 5, 15, 60)

    def __post_init__(self) -> None:
        if not self.delays or any(d < 0 for d in self.delays):
            raise ValueError("Schedule needs at least one non-negative delay")
        object.__setattr__(self, "delays", tuple(float(d) for d in self.delays))

    def delay(self, attempt: int) -> float:
        return self.delays[min(attempt, len(self.delays)) - 1]


@dataclass(frozen=True)
class Exponential:
    """base, base², base³ … seconds (2 → 4 → 8 …), capped; optional jitter spreads a herd.

    With ``initial`` the first wait is ``initial`` seconds and each later one ``base`` times the
    one before: ``Exponential(initial=3)`` waits 3 → 6 → 12 … — BullMQ's exponential backoff
    (``delay × 2^(attempt-1)``). Without it the old curve (base^attempt) is kept unchanged.
    """

    base: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.0
    initial: float | None = None

    def __post_init__(self) -> None:
        if self.base < 1 or self.cap < 0 or not 0 <= self.jitter < 1:
            raise ValueError("Exponential needs base >= 1, cap >= 0 and 0 <= jitter < 1")
        if self.initial is not None and self.initial < 0:
            raise ValueError("Exponential's initial delay must not be negative")

    def delay(self, attempt: int) -> float:
        if self.initial is None:
            value = min(self.cap, self.base**attempt)
        else:
            value = min(self.cap, self.initial * self.base ** (attempt - 1))
        if self.jitter:
            value *= 1 + random.uniform(-self.jitter, self.jitter)
        return value


@dataclass(frozen=True)
class Linear:
    """step × n seconds, capped: ``min(cap, step * attempt)``."""

    step: float = 2.0
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.step * attempt)


def policy_from_config(config: dict | list | None) -> RetryPolicy | None:
    """Build a policy from settings-style config: a list of delays or {"kind": ..., ...}."""
    if config is None:
        return None
    if isinstance(config, list | tuple):
        return Schedule(config)
    kind = config.get("kind", "schedule")
    options = {k: v for k, v in config.items() if k != "kind"}
    if kind == "schedule":
        return Schedule(options.get("delays", (1, 5, 15, 60)))
    if kind == "exponential":
        return Exponential(**options)
    if kind == "linear":
        return Linear(**options)
    raise ValueError(f"unknown retry policy kind {kind!r}")
