"""Two thousand runs waiting at once (on approvals and on timers), 500 times a worker's
slots, cost no thread and no worker slot: waiting is rows in the store, not something
held in memory. Once their hour has passed, the timers fire and those runs finish;
approvals still wait. (How the store scales with many more is the benchmarks' job.)"""

from __future__ import annotations

import threading
from pathlib import Path

from bench.flows import waiting
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.runs import RunCache
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.store.sqlite import SQLiteStore

RUNS = 2_000


def test_thousands_of_waiting_runs_hold_no_thread_or_worker_slot(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    clock = FakeClock()
    cache = RunCache(store)
    specs = [waiting("approval"), waiting("timer")]
    runs = [start_run(store, specs[i % 2], {}, clock=clock, cache=cache).id for i in range(RUNS)]
    worker = Worker(store, WorkerOptions(concurrency=4, timers_every=0.0), clock=clock)
    # counted once the worker is up (it listens for wake-ups on a thread of its own)
    threads_before = threading.active_count()
    try:
        for _ in range(10):  # the worker's turns while everything waits
            worker.step()
            worker.fire_timers()
        assert threading.active_count() == threads_before, "waiting started threads"
        assert not worker._running, "waiting runs hold worker slots"
        assert all(store.ready_count(run) == 0 for run in runs[:50])
        waits = store.waits(limit=RUNS * 2)
        assert len(waits) == RUNS
        assert {w.waits_for for w in waits} == {"approval", "timer"}

        clock.advance(3601)
        while worker.fire_timers() or worker._running:
            worker.step()
        while worker.step():
            pass
        statuses = [store.get_run(run).status for run in runs]
        assert statuses[1::2] == ["succeeded"] * (RUNS // 2), "every timer run finished"
        assert set(statuses[0::2]) == {"running"}, "approvals still wait for a person"
        assert len(store.waits(waits_for="approval", limit=RUNS)) == RUNS // 2
        assert store.waits(waits_for="timer") == []
    finally:
        worker.close()
        store.close()
