"""Where attempts execute: sync tasks in a thread pool, ``async def`` tasks on one asyncio
loop in its own thread. Either way the outcome is handed to ``on_done`` from the thread
that ran it; the worker loop never blocks on user code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from keel.runtime.invoke import Invocation, Outcome, error_of

Done = Callable[[Any, Outcome], None]


class Executor:
    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="keel-task")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="keel-async", daemon=True)
                thread.start()
                self._loop, self._loop_thread = loop, thread
            return self._loop

    def submit(
        self, key: Any, invocation: Invocation, timeout: float | None, on_done: Done
    ) -> None:
        """Start the attempt; ``on_done(key, outcome)`` is called exactly once."""
        if invocation.is_async():
            future: Future[Outcome] = asyncio.run_coroutine_threadsafe(
                invocation.run_async(timeout), self._event_loop()
            )
        else:
            future = self._pool.submit(invocation.run)

        def finished(done: Future[Outcome]) -> None:
            try:
                outcome = done.result()
            except BaseException as exc:  # never lose an attempt's end
                outcome = Outcome(error=error_of(exc))
            on_done(key, outcome)

        future.add_done_callback(finished)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        with self._lock:
            loop, thread = self._loop, self._loop_thread
            self._loop = self._loop_thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            if not thread.is_alive():
                loop.close()
