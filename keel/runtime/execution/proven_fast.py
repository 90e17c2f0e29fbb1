"""Which sync tasks have proven fast enough to run on the worker's own thread.

Handing an attempt to a task thread and its outcome back to the worker costs tens of
microseconds (a future, a queue, a thread waking up, the worker waking up): for a task
that takes a few microseconds, most of the step. A task that has run fast several times
in a row is run on the calling thread instead (``Executor``): nothing is handed over.

The record is per task (its import path), counted on every run of a thread-run sync
task wherever it ran: runs in a row that took less than ``FAST_BOUND``. One run over the
bound resets the count, so a task that starts to block leaves the worker's thread after
at most one slow call, and has to prove itself again. Safe to share between threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: runs in a row under ``FAST_BOUND`` before a task runs on the calling thread: one
#: fast run may be luck (a warm cache), a few in a row say the task does not wait on
#: anything; and a task run only once or twice gains little from it anyway
FAST_RUNS = 3

#: seconds under which a run counts as fast (1 ms): a few times what handing it to a
#: thread costs, so running it on the worker's thread is a clear gain, and short enough
#: that the worker, which does nothing else meanwhile, is not held up noticeably
FAST_BOUND = 0.001


class ProvenFast:
    def __init__(
        self,
        runs: int | None = None,
        bound: float | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``runs``, ``bound``: ``FAST_RUNS``, ``FAST_BOUND`` unless given (read here,
        so a test may change them). ``timer``: seconds, for measuring runs."""
        self.runs = FAST_RUNS if runs is None else runs
        self.bound = FAST_BOUND if bound is None else bound
        self.timer = timer
        #: task -> fast runs in a row (at most ``runs``); a slow run removes the task
        self._streaks: dict[str, int] = {}
        #: an increment must not undo a reset that another thread made meanwhile
        self._lock = threading.Lock()

    def proven(self, task: str) -> bool:
        """Whether ``task``'s last ``runs`` runs were all fast."""
        return self._streaks.get(task, 0) >= self.runs

    def timed(self, task: str, call: Callable[[], T]) -> T:
        """``call()``, its duration noted for ``task`` (also when it raises)."""
        began = self.timer()
        try:
            return call()
        finally:
            self.note(task, self.timer() - began)

    def note(self, task: str, seconds: float) -> None:
        with self._lock:
            if seconds < self.bound:
                self._streaks[task] = min(self._streaks.get(task, 0) + 1, self.runs)
            else:
                self._streaks.pop(task, None)
