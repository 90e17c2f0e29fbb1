"""The pool that runs task code: what keel uses of ``ThreadPoolExecutor``, on daemon
threads, so that a task thread that never returns does not keep its process alive."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from keel.runtime.execution.daemon_pool import DaemonPool


def test_at_most_its_threads_run_at_once_and_the_rest_wait_their_turn() -> None:
    pool = DaemonPool(2, "test")
    release = threading.Event()
    started = [threading.Event() for _ in range(3)]

    def call(index: int) -> str:
        started[index].set()
        assert release.wait(timeout=30)
        return threading.current_thread().name

    try:
        futures = [pool.submit(call, index) for index in range(3)]
        assert started[0].wait(timeout=30)
        assert started[1].wait(timeout=30)
        assert not started[2].is_set()  # both threads are busy: the third call waits
        release.set()
        names = {future.result(timeout=30) for future in futures}
    finally:
        release.set()
        pool.shutdown(wait=True)
    assert names <= {"test_0", "test_1"}  # a free thread took the third call


def test_an_exception_reaches_the_future() -> None:
    pool = DaemonPool(1, "test")
    try:
        future = pool.submit(int, "not a number")
        with pytest.raises(ValueError, match="not a number"):
            future.result(timeout=30)
    finally:
        pool.shutdown(wait=True)


def test_shutdown_can_cancel_what_has_not_started_and_refuses_more() -> None:
    pool = DaemonPool(1, "test")
    release = threading.Event()
    running = pool.submit(release.wait, 30)
    waiting = pool.submit(str, "never")
    pool.shutdown(wait=False, cancel_futures=True)
    release.set()
    assert running.result(timeout=30) is True
    assert waiting.cancelled()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(str, "late")


_NEVER_RETURNS = """
import threading
from keel.runtime.execution.daemon_pool import DaemonPool
started = threading.Event()
pool = DaemonPool(1, "test")
pool.submit(lambda: (started.set(), threading.Event().wait()))
started.wait(timeout=30)
print("exiting")
"""


def test_a_call_that_never_returns_does_not_keep_the_process_alive() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _NEVER_RETURNS],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "exiting\n"), done.stderr
