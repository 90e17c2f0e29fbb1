"""Where the runtime gets the time and how it waits: one ``Clock`` protocol, the system
clock, the database's clock for stores shared by many hosts, and a fake clock for tests
that moves only when told to or when it would otherwise wait (no ``sleep`` in tests).

Two kinds of time, never mixed:

- ``now()`` is the run clock (seconds since the epoch). Durable decisions are made with
  it: leases, timers, backoff, what events record. With a store shared by many hosts it
  is the database's (``clock_for``), so hosts with wrong clocks agree.
- ``monotonic()`` is pacing time: when to look at the queue again, how long to gather
  outcomes or let threads finish. No change of the wall clock moves it, and nothing
  durable depends on it.

Waiting is the clock's job too, so nothing in the runtime sleeps on its own: ``wait``
takes the next item of an ``Inbox`` (filled by other threads) within a timeout and
``sleep`` pauses (until a stop event is set). The real clocks block. ``FakeClock`` moves
its pacing time forward instead, except while work on real threads will put into the
inbox (``Inbox.busy``): that work takes real time, so the fake clock waits for it, as a
time-skipping test environment skips time only while no activity runs. Waiting never
moves the fake run clock (only ``advance`` does), so a test knows the time every record
carries.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger("keel.clock")

T = TypeVar("T")


def _idle() -> bool:
    return False


class Inbox(Generic[T]):
    """Items other threads hand to the one thread that waits for them (outcomes of
    attempts, results of deliveries, wake-ups from the store). ``busy`` says whether
    work running on other threads is still to put an item here."""

    def __init__(self, busy: Callable[[], bool] = _idle) -> None:
        self._queue: queue.SimpleQueue[T] = queue.SimpleQueue()
        self.busy = busy

    def put(self, item: T) -> None:
        self._queue.put(item)

    def get(self, timeout: float) -> T:
        """The next item, blocking up to ``timeout`` seconds (``queue.Empty`` if none came)."""
        return self._queue.get(timeout=timeout)

    def get_nowait(self) -> T:
        """The next item if one is there (else ``queue.Empty``)."""
        return self._queue.get_nowait()

    def empty(self) -> bool:
        return self._queue.empty()


class Clock(Protocol):
    def now(self) -> float:
        """Run-clock time: seconds since the epoch."""

    def monotonic(self) -> float:
        """Pacing time: seconds from some start, never going back."""

    def wait(self, inbox: Inbox[T], timeout: float) -> T | None:
        """The next item of ``inbox``, waiting up to ``timeout`` pacing seconds for one
        (None when none came)."""

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Pause ``seconds`` (less if ``stop`` is set meanwhile); whether ``stop`` is set."""


class _RealTime:
    """Pacing and waiting as they really pass on this host."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, inbox: Inbox[T], timeout: float) -> T | None:
        try:
            return inbox.get(timeout) if timeout > 0 else inbox.get_nowait()
        except queue.Empty:
            return None

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if stop is None:
            time.sleep(max(0.0, seconds))
            return False
        return stop.wait(max(0.0, seconds))


class RunClock(Protocol):
    """A clock that only tells the run's time, as a caller's own clock may (``Clock``
    without pacing): ``with_pacing`` makes a ``Clock`` of it."""

    def now(self) -> float: ...


class _PacedHere(_RealTime):
    """A run clock given by a caller, with pacing and waits as they pass on this host."""

    def __init__(self, clock: RunClock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now()


def with_pacing(clock: Clock | RunClock) -> Clock:
    """``clock`` itself when it paces and waits (``Clock``); a clock that only tells the
    time (``now()``) keeps telling it, and pacing and waits are this host's real ones."""
    if all(callable(getattr(clock, name, None)) for name in ("monotonic", "wait", "sleep")):
        return clock  # type: ignore[return-value]
    return _PacedHere(clock)


class SystemClock(_RealTime):
    def now(self) -> float:
        return time.time()


class DatabaseClock(_RealTime):
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
    """A clock for tests: the run clock starts at ``start`` and moves only by
    ``advance``; pacing time moves by ``advance`` and by every wait, which returns at
    once instead of blocking (unless real threads are busy filling the inbox)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._paced = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._paced

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._paced += seconds

    def wait(self, inbox: Inbox[T], timeout: float) -> T | None:
        try:
            return inbox.get_nowait()
        except queue.Empty:
            pass
        if timeout > 0 and inbox.busy():  # work on real threads takes real time
            try:
                return inbox.get(timeout)
            except queue.Empty:
                pass
        self._paced += max(0.0, timeout)
        return None

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        self._paced += max(0.0, seconds)
        return stop is not None and stop.is_set()


class Paced:
    """A pump that looks when it is due (run clock): ``_next`` is when it looks next;
    ``look_now`` makes the next turn look whatever the time (a wake-up came)."""

    _next: float = float("-inf")

    def due(self, now: float) -> bool:
        return now >= self._next

    def next_at(self) -> float:
        """When (run clock) the pump looks next."""
        return self._next

    def look_now(self) -> None:
        self._next = float("-inf")
