"""Aggregates computed once for every tab of this process (``app.state.shared``).

A page of aggregates (the overview, needs attention) is recomputed while runs change;
at 100,000 runs a day one overview costs about a second, so a tab each doing it is a
core each. Every tab asks ``Shared`` instead: a result is computed at most once in
``every`` seconds, by whichever tab asks first (the others wait for it on the entry's
lock rather than compute it too), and given to all until it is that old. A tab may so
be given a result computed shortly before the changes it follows; its stream follows
once more ``every`` seconds after the last changes (``live.stream``), and is then given
one computed after them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: the last result and when it was computed (monotonic; None: never)
    result: Any = None
    at: float | None = None


class Shared:
    """The last result of each computation (by key), shared between threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[Hashable, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, every: float, compute: Callable[[], T]) -> T:
        """``compute()``'s result for ``key``, computed again only when the last one is
        ``every`` seconds old (``every`` 0: always computed)."""
        with self._lock:
            entry = self._entries.setdefault(key, _Entry())
        with entry.lock:
            if entry.at is not None and self._clock() - entry.at < every:
                found: T = entry.result
                return found
            at = self._clock()
            result = compute()
            entry.result, entry.at = result, at
            return result
