"""A ``keel worker`` on a SQLite file is woken by the runs another process starts
(``keel.store.sqlite.wake``): its polls are stretched to 30 s, so each of 20 runs started
one after another from this process is taken only if a wake-up reached the worker; a
missed one makes the test hit its guard (well under 30 s a run) and fail. Nothing
asserts on durations."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import keel
from keel.engine.events import NodeStarted
from keel.store.sqlite import SQLiteStore
from tests.e2e import workerflows

ROOT = Path(__file__).resolve().parents[2]
RUNS = 20
#: seconds a run may wait to be taken: a worker left to poll would wait up to 30
GUARD = 15.0
#: a worker whose polls (and safety-net polls) are 30 s apart: only a wake-up is faster
SLOW_POLLS = (
    "import functools, sys; import keel.runtime.worker.loop as loop; "
    "loop.WorkerOptions = functools.partial(loop.WorkerOptions, poll=30.0, fallback_poll=30.0); "
    "sys.argv = ['keel', *sys.argv[1:]]; from keel.cli import main; main()"
)

pytestmark = pytest.mark.slow


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "keel.db"


@pytest.fixture
def worker(database: Path, tmp_path: Path) -> Iterator[Path]:
    """A worker with slow polls on ``database``; yields its log."""
    SQLiteStore(database).close()  # the schema, before the worker and the client race for it
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": f"sqlite:///{database}"}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SLOW_POLLS, "worker", "tests.e2e.workerflows"],
            env=env, cwd=ROOT, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        until("the worker announced itself", lambda: " modules: " in log.read_text(), 60.0)
        yield log
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()


def until(what: str, check: Callable[[], bool], bound: float) -> None:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"not within {bound:.0f} s: {what}")


def succeeded(store: SQLiteStore, run_id: str) -> Callable[[], bool]:
    return lambda: store.get_run(run_id).status == "succeeded"


def test_a_sqlite_worker_is_woken_by_each_run_another_process_starts(
    database: Path, worker: Path
) -> None:
    assert "(woken by notifications)" in worker.read_text()
    store = SQLiteStore(database)
    try:
        with keel.Client(store=store) as client:
            for n in range(RUNS):
                run_id = client.start(workerflows.hello, {"name": f"n{n}"})
                until(f"run {n} succeeded (a wake-up was missed?)",
                      succeeded(store, run_id), GUARD)  # fmt: skip
                started = [e.event for e in store.history(run_id)
                           if isinstance(e.event, NodeStarted)]  # fmt: skip
                assert len(started) == 1
                assert store.get_run(run_id).output == {"result": f"hello n{n}"}
    finally:
        store.close()
