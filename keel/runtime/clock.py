"""Where the runtime gets the time: one ``Clock`` protocol, the system clock, and a fake
clock for tests that moves only when told to (no ``sleep`` in tests)."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""


class SystemClock:
    def now(self) -> float:
        return time.time()


class FakeClock:
    """A clock for tests: starts at ``start`` and moves by ``advance``."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
