"""Workloads for the targets of the hot path (issue 17) that the older workloads do not
measure: a chain on PostgreSQL, runs started by another process and executed by a
long-lived ``keel worker``, the first run of a fresh process, and defining a long
workflow. Each runs in a fresh process (``python -m bench.workloads NAME SIZE``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: a hang guard for one workload, not a measurement
DEADLINE = 120.0


def w1_postgres(n: int, sync: str) -> dict[str, Any]:
    """W1's chain on PostgreSQL: µs per node (beside ``floor_postgres``)."""
    from bench.distributed import UnavailableError, fresh_database
    from bench.flows import chain
    from keel.runtime import RunCache, Worker, WorkerOptions, start_run

    spec = chain(n)
    try:
        with fresh_database("postgres") as (_, store):
            cache = RunCache(store)
            cache.plan_of(spec)
            worker = Worker(store, WorkerOptions(concurrency=8), cache=cache)
            began = time.perf_counter()
            record = start_run(store, spec, {"start": 0}, cache=cache)
            (done,) = worker.run_until_finished([record.id])
            elapsed = time.perf_counter() - began
            worker.close()
    except UnavailableError as exc:
        return {"skipped": str(exc)}
    assert done.output == {"last": n}, done.reason
    return {"us_per_node": elapsed / n * 1e6}


def client_to_worker(n: int, sync: str) -> dict[str, Any]:
    """Runs of a 3-node chain started one after another by this process, each executed
    by a ``keel worker`` process on the same SQLite file before the next starts: runs/s.
    What it measures is how soon a long-lived worker notices work another process left."""
    from bench.distributed import stop_processes
    from bench.flows import chain
    from keel.runtime import start_run
    from keel.store.sqlite import SQLiteStore

    spec = chain(3)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "keel.db"
        store = SQLiteStore(path, synchronous=sync)
        log = Path(folder) / "worker.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with log.open("ab") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "keel", "worker", str(ROOT / "bench" / "tasks.py"),
                 "--db", f"sqlite:///{path}"],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            )  # fmt: skip
        try:
            _finish(store, start_run(store, spec, {"start": -1}).id, worker, log)  # warm up
            began = time.perf_counter()
            for index in range(n):
                _finish(store, start_run(store, spec, {"start": index}).id, worker, log)
            elapsed = time.perf_counter() - began
        finally:
            stop_processes([worker])
            store.close()
    return {"runs_per_second": n / elapsed}


def _finish(store: Any, run_id: str, worker: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the run succeeded (looking every 0.2 ms: this process's polling must
    not be what is measured)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        status = store.get_run(run_id).status
        if status == "succeeded":
            return
        if status in ("failed", "cancelled") or worker.poll() is not None:
            raise SystemExit(f"run {run_id} {status}; worker log:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"run {run_id} did not end in {DEADLINE} s:\n{log.read_text()}")
        time.sleep(0.0002)


def first_run(n: int, sync: str) -> dict[str, Any]:
    """The work time of the first run of a fresh process (a chain of ``n``), once keel,
    the store and a worker are up: ms. Imports a first run would do count here."""
    from bench.flows import chain
    from keel.runtime import Worker, WorkerOptions, start_run
    from keel.store.sqlite import SQLiteStore

    spec = chain(n)
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "keel.db", synchronous=sync)
        worker = Worker(store, WorkerOptions(concurrency=8))
        began = time.perf_counter()
        record = start_run(store, spec, {"start": 0}, cache=worker.cache)
        (done,) = worker.run_until_finished([record.id])
        elapsed = time.perf_counter() - began
        worker.close()
        store.close()
    assert done.status == "succeeded", done.reason
    return {"ms": elapsed * 1e3}


def trace_steps(n: int, sync: str) -> dict[str, Any]:
    """Defining (tracing) a workflow of ``n`` steps in Python: ms, in a process that has
    defined one workflow before (``ms``: what each definition costs), and as the first
    definition of a fresh process (``first_ms``: one-time imports and schema building
    included, such as the JSON Schema validator that checks an input schema)."""
    import keel
    from bench.tasks import inc

    def define(name: str, steps: int) -> float:
        began = time.perf_counter()

        @keel.workflow(name=name)
        def traced(start: int) -> int:
            value = inc(start)
            for _ in range(steps - 1):
                value = inc(value)
            return value

        elapsed = time.perf_counter() - began
        assert len(traced.spec.nodes) == steps
        return elapsed * 1e3

    first = define(f"first-{n}", n)
    define("warm-up", 1)
    return {"ms": define(f"traced-{n}", n), "first_ms": first}
