"""Where the runtime gets the time: one ``Clock`` protocol, the system clock, the
database's clock for stores shared by many hosts, and a fake clock for tests that moves
only when told to (no ``sleep`` in tests)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("keel.clock")


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""


class SystemClock:
    def now(self) -> float:
        return time.time()


class DatabaseClock:
    """The database server's time, carried forward with this host's monotonic clock.

    Leases and timers are shared by every host, so they must be judged by one clock: a
    worker whose wall clock is minutes ahead would otherwise see live leases as expired
    and take them. The server's time is read when the clock is made and again every
    ``resync_every`` seconds (the midpoint of the round trip); in between, the monotonic
    clock, which no change of the wall clock moves, measures what passed. ``now`` never
    goes backwards.
    """

    def __init__(self, read: Callable[[], float], resync_every: float = 60.0) -> None:
        self._read = read
        self.resync_every = resync_every
        self._lock = threading.Lock()
        self._base = 0.0
        self._base_mono = 0.0
        self._last = float("-inf")
        self._sync()

    def _sync(self) -> None:
        before = time.monotonic()
        server = self._read()
        after = time.monotonic()
        self._base, self._base_mono = server, (before + after) / 2

    def now(self) -> float:
        with self._lock:
            if time.monotonic() - self._base_mono >= self.resync_every:
                try:
                    self._sync()
                except Exception as exc:  # keep counting from the last reading
                    log.warning("reading the database's clock failed: %s", exc)
                    self._base_mono = time.monotonic() - self.resync_every / 2
            self._last = max(self._last, self._base + time.monotonic() - self._base_mono)
            return self._last


class _TimeSource(Protocol):
    def database_time(self) -> float | None: ...


def clock_for(store: _TimeSource) -> Clock:
    """The clock decisions about ``store``'s leases and timers are made with: the
    database's when it has one (shared by many hosts), else this host's."""
    if store.database_time() is None:
        return SystemClock()
    return DatabaseClock(lambda: _read(store))


def _read(store: _TimeSource) -> float:
    now = store.database_time()
    assert now is not None
    return now


class FakeClock:
    """A clock for tests: starts at ``start`` and moves by ``advance``."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
