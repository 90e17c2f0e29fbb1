"""One workload, measured in this (fresh) process; prints one JSON object.

    python -m bench.workloads NAME SIZE [--sync normal|full] [--metrics]
                              [--tracing [--sample RATIO]]

SIZE is what the workload counts (nodes of a chain, runs, commits...). The object holds
the measure (``us_per_node``: microseconds per node, ``runs_per_second``...) and the
workload, size and SQLite sync mode it was taken with. The suite (``python -m bench``)
starts a new process per repetition so imports, caches and heap of one measurement
never help or hurt the next, and sets each figure beside its floor.

``--metrics``: the in-process workers of w1_chain, w2_fan_out, w3_many_runs and w4_scale
count into a ``Metrics``; ``--tracing``: they record every span through the
OpenTelemetry SDK (``--sample RATIO``: the share of runs a ratio sampler keeps); see
``bench.observing``. Those workloads also give the CPU time of the process over the
measured span (``cpu_...``: every thread, the span processor's included), steadier
than wall time on a machine shared with other work.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import api, targets
from bench.observing import OBSERVING


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def floor_python(n: int, sync: str) -> dict[str, Any]:
    """The same work as W1 as plain function calls: µs per call."""
    from bench.tasks import inc

    began = time.perf_counter()
    value = 0
    for _ in range(n):
        value = inc(value)
    elapsed = time.perf_counter() - began
    assert value == n
    return {"us_per_call": elapsed / n * 1e6}


def floor_sqlite(n: int, sync: str) -> dict[str, Any]:
    """One INSERT + COMMIT per row, WAL mode: µs per commit."""
    with tempfile.TemporaryDirectory() as folder:
        conn = sqlite3.connect(Path(folder) / "floor.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={sync}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
        began = time.perf_counter()
        for index in range(n):
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t (id, data) VALUES (?, ?)", (index, '{"x": 1}'))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - began
        conn.close()
    return {"us_per_commit": elapsed / n * 1e6}


def floor_postgres(n: int, sync: str) -> dict[str, Any]:
    """One INSERT + COMMIT per row with psycopg, when it and the server are available."""
    try:
        import psycopg  # type: ignore[import-not-found]
    except ImportError:
        return {"skipped": "psycopg is not installed"}
    url = os.environ.get("KEEL_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        conn = psycopg.connect(url, autocommit=False)
    except Exception as exc:
        return {"skipped": f"PostgreSQL not reachable: {exc}"}
    with conn:
        conn.execute("DROP TABLE IF EXISTS keel_bench_floor")
        conn.execute("CREATE TABLE keel_bench_floor (id INTEGER PRIMARY KEY, data TEXT)")
        conn.commit()
        began = time.perf_counter()
        for index in range(n):
            conn.execute("INSERT INTO keel_bench_floor VALUES (%s, %s)", (index, '{"x": 1}'))
            conn.commit()
        elapsed = time.perf_counter() - began
        conn.execute("DROP TABLE keel_bench_floor")
        conn.commit()
    return {"us_per_commit": elapsed / n * 1e6}


#: the C functions called at the ends of the measured span, which nothing else here calls:
#: where ``bench.instructions`` has callgrind zero its counts, then dump them
MARKS = ("sys_getswitchinterval", "sys_getallocatedblocks")


#: how many times slower than natively this process runs (``KEEL_BENCH_SLOWED``: set by
#: ``bench.instructions``, under valgrind): what the worker does by the clock is slowed as
#: much, so it does the same work as natively
SLOWED = float(os.environ.get("KEEL_BENCH_SLOWED") or 1)


def _options() -> Any:
    """The measured workers' options: 8 slots; under ``SLOWED``, their periodic looks
    (timers, outbox, reclaims) as rare per unit of work as natively, and a task proven
    fast as natively (else how long a trivial task seems to take decides where it runs,
    and with it the count)."""
    from keel.runtime import WorkerOptions
    from keel.runtime.execution import proven_fast

    if SLOWED == 1:
        return WorkerOptions(concurrency=8)
    proven_fast.FAST_BOUND = 0.001 * SLOWED
    return WorkerOptions(concurrency=8, timers_every=0.5 * SLOWED, notify_every=0.5 * SLOWED,
                         reclaim_every=2.0 * SLOWED)  # fmt: skip


def _store(folder: str, sync: str) -> Any:
    from keel.store.sqlite import SQLiteStore

    return SQLiteStore(Path(folder) / "keel.db", synchronous=sync)


class _Clocks:
    """Wall and CPU time (the whole process's: every thread) and the garbage collector's
    CPU time over the measured span, from ``start`` to ``stop``."""

    def __init__(self) -> None:
        self.wall = self.cpu = self.gc = 0.0
        self.full_collections = 0
        self._collecting = 0.0

    def start(self) -> _Clocks:
        # what the process's start-up left is collected first: else the full collection
        # its imports make due falls in whichever measurement happens to be running
        gc.collect()
        gc.callbacks.append(self._collection)
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        sys.getswitchinterval()  # MARKS[0]: the span begins
        return self

    def stop(self) -> None:
        """Take the times, once what tracing holds is exported."""
        OBSERVING.flush()
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        sys.getallocatedblocks()  # MARKS[1]: the span ends
        gc.callbacks.remove(self._collection)

    def _collection(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._collecting = time.process_time()
            return
        self.gc += time.process_time() - self._collecting
        self.full_collections += info["generation"] == 2

    def per(self, count: int, unit: str) -> dict[str, float]:
        """CPU µs per ``unit``, and what the collector took (ms, full collections)."""
        return {f"cpu_us_per_{unit}": self.cpu / count * 1e6, "gc_ms": self.gc * 1e3,
                "gc_full": self.full_collections}  # fmt: skip


def _run_one(spec: Any, run_input: Any, sync: str) -> tuple[_Clocks, Any]:
    """The times from start_run to the end of the run, and its record."""
    from keel.runtime import RunCache, Worker, start_run

    with tempfile.TemporaryDirectory() as folder:
        store = _store(folder, sync)
        cache = RunCache(store)
        cache.plan_of(spec)  # compiling the definition is not part of running it
        metrics = OBSERVING.new_metrics()
        worker = Worker(store, _options(), cache=cache, metrics=metrics)
        clocks = _Clocks().start()
        record = start_run(store, spec, run_input, cache=cache)
        (done,) = worker.run_until_finished([record.id])
        clocks.stop()
        worker.close()
        store.close()
    assert done.status == "succeeded", done.reason
    return clocks, done


def w1_chain(n: int, sync: str) -> dict[str, Any]:
    from bench.flows import chain

    clocks, done = _run_one(chain(n), {"start": 0}, sync)
    assert done.output == {"last": n}
    return {"us_per_node": clocks.wall / n * 1e6, **clocks.per(n, "node")}


def w2_fan_out(n: int, sync: str) -> dict[str, Any]:
    from bench.flows import fan_out

    clocks, done = _run_one(fan_out(n), {}, sync)
    assert done.output == {"total": n * (n - 1)}
    return {"seconds": clocks.wall, "us_per_node": clocks.wall / (n + 2) * 1e6,
            **clocks.per(n + 2, "node")}  # fmt: skip


def w3_many_runs(n: int, sync: str) -> dict[str, Any]:
    from bench.flows import chain
    from keel.runtime import RunCache, Worker

    spec = chain(3)
    with tempfile.TemporaryDirectory() as folder:
        store = _store(folder, sync)
        cache = RunCache(store)
        cache.plan_of(spec)
        metrics = OBSERVING.new_metrics()
        worker = Worker(store, _options(), cache=cache, metrics=metrics)
        clocks = _Clocks().start()
        for index in range(n):
            run_id = worker.start_run(spec, {"start": index})
            (done,) = worker.run_until_finished([run_id])
            assert done.output == {"last": index + 3}
        clocks.stop()
        worker.close()
        store.close()
    return {"runs_per_second": n / clocks.wall, **clocks.per(n, "run")}


def w4_scale(n: int, sync: str) -> dict[str, Any]:
    from bench.flows import layered

    spec = layered(n)
    clocks, _ = _run_one(spec, {}, sync)
    return {"us_per_node": clocks.wall / n * 1e6, **clocks.per(n, "node"),
            "peak_rss_mb": _peak_rss_mb()}  # fmt: skip


def w6_waiting(n: int, sync: str) -> dict[str, Any]:
    """n runs waiting at once (half on an approval, half on a one-hour timer) with a
    worker looking after them: the memory and threads they cost while they wait, then
    how fast the timers fire and their runs finish once the hour has passed."""
    import threading

    from bench.flows import waiting
    from keel.runtime.clock import FakeClock
    from keel.runtime.operations.control import start_run
    from keel.runtime.runs import RunCache
    from keel.runtime.worker.loop import Worker, WorkerOptions
    from keel.store.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "keel.db", synchronous=sync)
        clock = FakeClock()
        cache = RunCache(store)
        specs = [waiting("approval"), waiting("timer")]
        rss_before = _peak_rss_mb()
        threads_before = threading.active_count()
        began = time.perf_counter()
        runs = [start_run(store, specs[i % 2], {}, clock=clock, cache=cache).id for i in range(n)]
        created = time.perf_counter() - began
        worker = Worker(store, WorkerOptions(concurrency=8, timers_every=0.0), clock=clock)
        for _ in range(20):  # the worker's turns while everything waits
            worker.step()
        waiting_threads = threading.active_count() - threads_before
        held = len(worker._running)
        waiting_rss = _peak_rss_mb() - rss_before
        clock.advance(3601)
        began = time.perf_counter()
        while worker.fire_timers() or worker._running:
            worker.step()
        while worker.step():
            pass
        fired = time.perf_counter() - began
        done = sum(store.get_run(run).status == "succeeded" for run in runs)
        worker.close()
        store.close()
    assert done == n // 2, f"{done} timer runs finished, expected {n // 2}"
    return {"create_us_per_run": created / n * 1e6, "threads_added": waiting_threads,
            "attempts_held": held, "rss_growth_mb": waiting_rss,
            "timer_runs_per_second": (n // 2) / fired, "peak_rss_mb": _peak_rss_mb()}  # fmt: skip


def w7_distributed(n: int, sync: str) -> dict[str, Any]:
    """n runs of a 10-node fan-out executed by 1, 2 and 4 ``keel worker`` processes, on
    PostgreSQL and on one SQLite file: nodes per second (see ``bench.distributed``)."""
    from bench.distributed import measure

    return measure(n, (1, 2, 4), sync)


#: what each workload measures, for ``--help`` (one line each, 80 columns)
ABOUT = {
    "w1_chain": "one run, a chain of SIZE steps: µs per node",
    "w1_postgres": "the same chain on PostgreSQL: µs per node",
    "w2_fan_out": "one run fanning out to SIZE nodes: µs per node",
    "w3_many_runs": "SIZE runs of 3 steps, one after another: runs/s",
    "w4_scale": "one run of a layered DAG of SIZE nodes: µs per node",
    "w6_waiting": "SIZE runs waiting at once: memory, then timers: runs/s",
    "w7_distributed": "SIZE runs by 1, 2, 4 worker processes: nodes/s",
    "client_to_worker": "SIZE runs started here, run by a keel worker: runs/s",
    "first_run": "the first run (SIZE steps) of a fresh process: ms",
    "trace_steps": "defining a workflow of SIZE steps: ms",
    "api_starts": "SIZE runs started over HTTP by 16 clients, SQLite: runs/s",
    "api_starts_pg": "the same on PostgreSQL: runs/s, p50 and p99 ms",
    "floor_python": "SIZE plain Python calls: µs per call",
    "floor_sqlite": "SIZE one-row SQLite commits: µs per commit",
    "floor_postgres": "SIZE one-row PostgreSQL commits: µs per commit",
}
SYNC = ("normal", "full")
WORKLOADS: dict[str, Callable[[int, str], dict[str, Any]]] = {
    "w1_postgres": targets.w1_postgres,
    "client_to_worker": targets.client_to_worker,
    "first_run": targets.first_run,
    "trace_steps": targets.trace_steps,
    "api_starts": api.api_starts,
    "api_starts_pg": api.api_starts_pg,
    "floor_python": floor_python,
    "floor_sqlite": floor_sqlite,
    "floor_postgres": floor_postgres,
    "w1_chain": w1_chain,
    "w2_fan_out": w2_fan_out,
    "w3_many_runs": w3_many_runs,
    "w4_scale": w4_scale,
    "w6_waiting": w6_waiting,
    "w7_distributed": w7_distributed,
}


def main() -> None:
    args = sys.argv[1:]
    if any(arg in ("-h", "--help") for arg in args):
        print(__doc__.strip().replace("``", "") + "\n\nNAME (SIZE) is one of:")
        for name, what in ABOUT.items():
            print(f"  {name:<17}{what}")
        return
    sync = _option(args, "--sync", "normal")
    sample = _option(args, "--sample", "1")
    OBSERVING.metrics = _flag(args, "--metrics")
    OBSERVING.tracing = _ratio(sample) if _flag(args, "--tracing") else None
    if len(args) != 2 or args[0] not in WORKLOADS or not args[1].isdigit() or sync not in SYNC:
        names = " | ".join(WORKLOADS)
        sys.exit(f"usage: python -m bench.workloads NAME SIZE [--sync normal|full] [--metrics] "
                 f"[--tracing [--sample RATIO]]\n"
                 f"NAME: {names}; SIZE: a whole number (runs, nodes or commits)")  # fmt: skip
    OBSERVING.install()
    measured = WORKLOADS[args[0]](int(args[1]), sync)
    print(json.dumps({**measured, "workload": args[0], "size": int(args[1]), "sync": sync,
                      **OBSERVING.described()}))  # fmt: skip


def _flag(args: list[str], name: str) -> bool:
    """Whether ``name`` was given (taken out of ``args``)."""
    found = name in args
    args[:] = [arg for arg in args if arg != name]
    return found


def _option(args: list[str], name: str, default: str) -> str:
    """The value given after ``name`` (both taken out of ``args``), else ``default``."""
    if name not in args:
        return default
    at = args.index(name)
    value = args[at + 1] if at + 1 < len(args) else ""
    del args[at : at + 2]
    return value


def _ratio(text: str) -> float:
    try:
        ratio = float(text)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        sys.exit(f"--sample {text!r}: the share of runs to trace, from 0 to 1 (0.1: one in ten)")
    return ratio


if __name__ == "__main__":
    main()
