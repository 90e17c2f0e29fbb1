"""A pool of daemon threads for task code, in place of ``ThreadPoolExecutor``.

``concurrent.futures`` joins its threads when the interpreter exits. A sync task that
ignores its timeout cannot be stopped, so its thread would keep the process alive until
the function returns: ``keel run`` printed its run's result, then hung. Daemon threads do
not hold the process. By the time a process exits, an attempt whose thread still runs
has been failed at its timeout or given back to the queue, so nothing recorded waits on
it (the worker says which attempts it abandoned).

It does what keel needs of ``ThreadPoolExecutor``: ``submit`` returns a ``Future``; at
most ``threads`` calls run at once, on threads started as needed and then reused.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_Work = tuple[Future[Any], Callable[[], Any]]


class DaemonPool:
    def __init__(self, threads: int, name: str) -> None:
        self._most = threads
        self._name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        #: released by a thread each time it finishes a call and looks for the next
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot run anything more: the pool was shut down")
            self._work.put((future, functools.partial(function, *args, **kwargs)))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._most:
                thread = threading.Thread(
                    target=self._serve, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        return future

    def _serve(self) -> None:
        while (work := self._work.get()) is not None:
            future, call = work
            if future.set_running_or_notify_cancel():
                try:
                    result = call()
                except BaseException as exc:  # the future carries it to whoever waits
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del work, future, call  # do not keep the last result alive while idle
            self._idle.release()

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Accept nothing more; the threads end after their current call (and, unless
        ``cancel_futures``, after what was submitted). ``wait``: until they have."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            try:
                while (work := self._work.get_nowait()) is not None:
                    work[0].cancel()
            except queue.Empty:
                pass
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()
