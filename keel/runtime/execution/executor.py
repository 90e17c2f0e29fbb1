"""Where attempts execute: sync tasks in a thread pool (or, with ``isolation="process"``,
in a child process per attempt), ``async def`` tasks on one asyncio loop in its own
thread. Either way the outcome is handed to ``on_done`` from the thread that ran it.

Except a sync task that has proven fast (``keel.runtime.execution.proven_fast``: its
last runs each took under a millisecond): handing it to a thread and its outcome back
would cost more than the task, so when the caller runs nothing else (``alone``) it
runs on the calling thread (the worker's), inside ``submit``, which calls ``on_done``
before it returns. Meanwhile the worker does nothing else; one run over the bound sends
the task back to the threads. ``inline=False`` keeps every attempt off the calling
thread. It runs in a fresh ``contextvars.Context``, as a
task thread would, and not on a thread that runs an asyncio loop (a sync task may call
``asyncio.run``). Ctrl-C on the main thread stops the worker, as when it waited for a
thread: the attempt is not ended, its lease goes back with the worker's.

Timeouts: an async task is cancelled; a process is killed. A sync task in a thread
cannot be stopped, so at its timeout the attempt is failed with ``TimeoutError`` anyway
(``on_done``), and whatever the thread returns later is handed to ``on_late``, to be
recorded as discarded. The thread stays busy until the function returns: tasks that may
hang should use ``isolation="process"``. An attempt run on the calling thread is failed at
its timeout the same way (from the timeout thread), but the caller learns of it only
when the function returns. Task threads are daemon threads
(``keel.runtime.execution.daemon_pool``): such a thread does not keep the process from exiting.

One thread (``keel-timeouts``) watches every thread-run attempt's timeout; it must not
die, or no later timeout in the process fires: what goes wrong in it is logged and it
goes on, and it never waits longer than an hour at a time, whatever deadline it holds.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from keel.runtime.execution.daemon_pool import DaemonPool
from keel.runtime.execution.invoke import Invocation, Outcome, error_of, timed_out
from keel.runtime.execution.proven_fast import ProvenFast
from keel.runtime.execution.task_logs import about

Done = Callable[[Any, Outcome], None]

log = logging.getLogger("keel.executor")

#: seconds the timeout thread sleeps at most before it looks at its deadlines again
_LONGEST_WAIT = 3600.0


class _Once:
    """Hands an attempt's end to ``on_done`` exactly once: its outcome or its timeout,
    whichever comes first; an outcome after the timeout goes to ``on_late``."""

    def __init__(self, key: Any, on_done: Done, on_late: Done | None, overdue: set[_Once]) -> None:
        self.key, self.on_done, self.on_late = key, on_done, on_late
        self._lock = threading.Lock()
        self._ended = False
        #: attempts failed at their timeout whose thread is still running (shared)
        self._overdue = overdue

    def end(self, outcome: Outcome, *, late_if_ended: bool) -> None:
        with self._lock:
            ended, self._ended = self._ended, True
            if not ended and not late_if_ended:
                self._overdue.add(self)
            elif ended and late_if_ended:
                self._overdue.discard(self)
        if not ended:
            self.on_done(self.key, outcome)
        elif late_if_ended and self.on_late is not None:
            self.on_late(self.key, outcome)

    def abandon(self) -> None:
        """End without an outcome: the caller that ran the attempt was interrupted (its
        worker gives the lease back). A timeout that fires later hands nothing on."""
        with self._lock:
            self._ended = True
            self._overdue.discard(self)

    @property
    def ended(self) -> bool:
        return self._ended


#: deadlines the timeout thread holds before it drops those of attempts that ended
_COMPACT_FROM = 1024


class _Watchdog:
    """One thread that fails thread-run attempts whose timeout passed (a heap of
    deadlines, not a timer thread per attempt)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Once, Outcome]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        #: the heap's size at which the deadlines of ended attempts are dropped
        self._compact_at = _COMPACT_FROM

    def watch(self, seconds: float, once: _Once, outcome: Outcome) -> None:
        if not math.isfinite(seconds):  # spec validation refuses these
            log.error("attempt %r was given a timeout of %r s; it runs without one",
                      once.key, seconds, extra=about(once.key))  # fmt: skip
            return
        with self._wake:
            heapq.heappush(
                self._heap, (time.monotonic() + seconds, next(self._order), once, outcome)
            )
            if len(self._heap) >= self._compact_at:
                self._compact()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="keel-timeouts", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def _compact(self) -> None:
        """Drop the deadlines of attempts that ended: most end long before their
        timeout, and a worker running a thousand steps a second with hour-long timeouts
        would otherwise hold millions. Amortised: the next look is at twice what is left."""
        self._heap = [entry for entry in self._heap if not entry[2].ended]
        heapq.heapify(self._heap)
        self._compact_at = max(_COMPACT_FROM, 2 * len(self._heap))

    def _loop(self) -> None:
        while True:
            once: _Once | None = None
            try:
                expired = self._next_expired()
                if expired is None:
                    return
                once, outcome = expired
                once.end(outcome, late_if_ended=False)
            except Exception:  # the other attempts' timeouts depend on this thread
                what = "waiting for timeouts" if once is None else f"timing out {once.key!r}"
                log.exception("the timeout thread failed %s; it goes on watching the others",
                              what, extra=None if once is None else about(once.key))  # fmt: skip

    def _next_expired(self) -> tuple[_Once, Outcome] | None:
        """Wait for the earliest timeout to pass and take it off the heap (None: stopped).

        A wait lasts at most ``_LONGEST_WAIT``: a deadline further away is reached in
        steps, so no wait is too long for the platform (``Condition.wait`` overflows)."""
        with self._wake:
            while not self._stopped:
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    _, _, once, outcome = heapq.heappop(self._heap)
                    return once, outcome
                self._wake.wait(min(self._heap[0][0] - now, _LONGEST_WAIT) if self._heap else None)
            return None

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()


class Executor:
    def __init__(
        self, threads: int, *, inline: bool = True, proven: ProvenFast | None = None
    ) -> None:
        """``inline``: run proven-fast sync tasks on the calling thread (off: never).
        ``proven``: the record of which tasks are fast (a test gives its own)."""
        self.inline = inline
        self._proven = proven or ProvenFast()
        self._pool = DaemonPool(threads, "keel-task")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._watchdog = _Watchdog()
        self._overdue: set[_Once] = set()

    def overdue(self) -> int:
        """Attempts failed at their timeout whose thread has not returned yet."""
        return len(self._overdue)

    def overdue_keys(self) -> list[Any]:
        """The keys of those attempts (a process that exits now abandons their threads)."""
        return [once.key for once in list(self._overdue)]

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="keel-async", daemon=True)
                thread.start()
                self._loop, self._loop_thread = loop, thread
            return self._loop

    def submit(
        self,
        key: Any,
        invocation: Invocation,
        timeout: float | None,
        on_done: Done,
        on_late: Done | None = None,
        *,
        alone: bool = True,
    ) -> None:
        """Start the attempt; ``on_done(key, outcome)`` is called exactly once, and
        ``on_late(key, outcome)`` for a thread's result that came after its timeout.
        A proven-fast sync task runs here, before this returns, when it is ``alone``:
        nothing else of the caller's runs meanwhile (a sibling it may wait for, say)."""
        once = _Once(key, on_done, on_late, self._overdue)
        if invocation.isolation == "process":
            future: Future[Outcome] = self._pool.submit(invocation.run_in_process, timeout)
        elif invocation.is_async():
            future = asyncio.run_coroutine_threadsafe(
                invocation.run_async(timeout), self._event_loop()
            )
        elif alone and self._runs_here(invocation):
            self._run_here(invocation, timeout, once)
            return
        elif timeout is not None:
            future = self._pool.submit(self._run_watched, invocation, timeout, once)
        else:
            future = self._pool.submit(self._run_timed, invocation)

        def finished(done: Future[Outcome]) -> None:
            try:
                outcome = done.result()
            except BaseException as exc:  # never lose an attempt's end
                outcome = Outcome(error=error_of(exc))
            once.end(outcome, late_if_ended=True)

        future.add_done_callback(finished)

    def _runs_here(self, invocation: Invocation) -> bool:
        """Whether this sync attempt runs on the calling thread: inline is on, its task
        proved fast, and the thread runs no asyncio loop (in a task thread there is
        none, so a sync task may call ``asyncio.run``)."""
        return (
            self.inline
            and self._proven.proven(invocation.task)
            and asyncio._get_running_loop() is None
        )

    def _run_here(self, invocation: Invocation, timeout: float | None, once: _Once) -> None:
        """The attempt on the calling thread, ended as a task thread's would be."""
        interruptible = threading.current_thread() is threading.main_thread()
        fresh = contextvars.Context()  # what a task thread starts with
        try:
            if timeout is not None:
                outcome = fresh.run(self._run_watched, invocation, timeout, once, interruptible)
            else:
                outcome = fresh.run(self._run_timed, invocation, interruptible)
        except BaseException as exc:  # never lose an attempt's end
            if interruptible and isinstance(exc, KeyboardInterrupt):
                once.abandon()  # Ctrl-C is the worker's, not the task's failure
                raise
            outcome = Outcome(error=error_of(exc))
        once.end(outcome, late_if_ended=True)

    def _run_timed(self, invocation: Invocation, interruptible: bool = False) -> Outcome:
        return self._proven.timed(
            invocation.task, lambda: invocation.run(interruptible=interruptible)
        )

    def _run_watched(
        self, invocation: Invocation, timeout: float, once: _Once, interruptible: bool = False
    ) -> Outcome:
        # the clock starts when the function does, not while the attempt waits for a thread
        self._watchdog.watch(timeout, once, timed_out(timeout, invocation.retry, thread=True))
        return self._run_timed(invocation, interruptible)

    def shutdown(self, wait: bool = True) -> None:
        self._watchdog.stop()
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        with self._lock:
            loop, thread = self._loop, self._loop_thread
            self._loop = self._loop_thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            if not thread.is_alive():
                loop.close()
