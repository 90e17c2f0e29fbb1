"""W7: nodes per second executed by several ``keel worker`` processes sharing one store.

For each backend (PostgreSQL, SQLite) and each number of workers, in a fresh database:
record every run first (nothing executes them yet), launch the worker processes, wait
until every run has ended, stop the workers with SIGTERM, then read the histories.

Two figures per trial:

* ``nodes_per_s``, the headline: task executions divided by the time from the first
  ``NodeStarted`` to the last ``RunCompleted``, both taken from the histories (the
  times the workers recorded), so the processes' start-up is left out;
* ``wall_nodes_per_s``: the same count over the time from launching the workers to
  seeing the last run end (polled every ``POLL`` seconds), start-up included.

``ramp_s`` is how long after the first worker's first start the last worker started
its first node: the part of the window during which fewer workers were working.
Every run must succeed with the right output, or the trial raises.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import fanflow
from keel.engine.events import NodeStarted, RunCompleted
from keel.errors import StoreError
from keel.runtime.operations.control import start_run
from keel.store.protocol import Store

ROOT = Path(__file__).resolve().parents[1]
FLOW = ROOT / "bench" / "fanflow.py"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("postgres", "sqlite")
#: seconds between looks at the runs while the workers execute them
POLL = 0.05
#: a hang guard for one trial, not a measurement
DEADLINE = 300.0
ENDED_BADLY = ("failed", "cancelled")


class TrialError(RuntimeError):
    """A trial did not end with every run succeeded; the message has the workers' logs."""


class UnavailableError(Exception):
    """The backend cannot be used here (no driver, no server); the message says why."""


@dataclass(frozen=True)
class Trial:
    backend: str
    workers: int
    runs: int
    #: task executions (``NodeStarted`` events) in all the histories
    nodes: int
    #: first ``NodeStarted`` to last ``RunCompleted``, from the histories
    active_s: float
    #: launching the workers to seeing the last run end
    wall_s: float
    ramp_s: float
    #: nodes each worker executed, most first
    per_worker: list[int]

    @property
    def nodes_per_s(self) -> float:
        return self.nodes / self.active_s

    @property
    def wall_nodes_per_s(self) -> float:
        return self.nodes / self.wall_s

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "nodes_per_s": self.nodes_per_s,
                "wall_nodes_per_s": self.wall_nodes_per_s}  # fmt: skip


def postgres_url() -> str:
    """A URL naming a new schema on the benchmark's PostgreSQL server."""
    base = os.environ.get("KEEL_BENCH_POSTGRES", POSTGRES)
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}schema=bench_{secrets.token_hex(6)}"


@contextmanager
def fresh_database(backend: str, sync: str = "normal") -> Iterator[tuple[str, Store]]:
    """A new, empty database: its URL (for the workers) and a store open on it.

    Raises ``UnavailableError`` when PostgreSQL cannot be used."""
    if backend == "sqlite":
        from keel.store.sqlite import SQLiteStore

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "keel.db"
            url = f"sqlite:///{path}" + ("" if sync == "normal" else f"?synchronous={sync}")
            sqlite = SQLiteStore(path, synchronous=sync)
            try:
                yield url, sqlite
            finally:
                sqlite.close()
        return
    try:
        from keel.store.postgres import PostgresStore
    except ImportError as exc:
        raise UnavailableError(f"psycopg is not installed ({exc})") from None
    url = postgres_url()
    try:
        postgres = PostgresStore(url, upgrade=True)
    except StoreError as exc:
        raise UnavailableError(f"PostgreSQL not reachable: {exc}") from None
    try:
        yield url, postgres
    finally:
        postgres.close()
        postgres.drop_schema()


def _launch(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "keel", "worker", str(FLOW), "--concurrency", "8",
             "--db", url],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip


def stop_processes(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every worker and wait for it (SIGKILL if it does not stop)."""
    for proc in workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in workers:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _logs(folder: Path, tail: int = 3000) -> str:
    return "\n".join(
        f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}"
        for path in sorted(folder.glob("worker-*.log"))
    )


def _wait_for_runs(
    store: Store, runs: int, workers: Sequence[subprocess.Popen[bytes]], logs: Path
) -> None:
    """Return once ``runs`` runs have succeeded; raise if one ended otherwise, a worker
    exited, or the deadline passed."""
    deadline = time.monotonic() + DEADLINE
    while len(store.list_runs(status="succeeded", limit=runs + 1)) < runs:
        bad = [run.id for status in ENDED_BADLY for run in store.list_runs(status=status)]
        if bad:
            raise TrialError(f"runs ended badly: {bad}\n{_logs(logs)}")
        exited = [proc.pid for proc in workers if proc.poll() is not None]
        if exited:
            raise TrialError(f"workers {exited} exited by themselves\n{_logs(logs)}")
        if time.monotonic() > deadline:
            raise TrialError(f"the runs did not end within {DEADLINE} s\n{_logs(logs)}")
        time.sleep(POLL)


def trial(backend: str, url: str, store: Store, workers: int, runs: int) -> Trial:
    """``runs`` runs of ``fanflow.fan`` executed by ``workers`` processes on ``url``."""
    spec = fanflow.fan.spec
    inputs = {start_run(store, spec, {"n": n}, origin=str(FLOW)).id: n for n in range(runs)}
    with tempfile.TemporaryDirectory() as folder:
        logs = Path(folder)
        began = time.perf_counter()
        fleet = [_launch(url, logs / f"worker-{index}.log") for index in range(workers)]
        try:
            _wait_for_runs(store, runs, fleet, logs)
            wall = time.perf_counter() - began
        finally:
            stop_processes(fleet)
    starts: list[float] = []
    ends: list[float] = []
    first_by_worker: dict[str, float] = {}
    by_worker: Counter[str] = Counter()
    for run_id, n in inputs.items():
        record = store.get_run(run_id)
        if record.output != fanflow.expected(n):
            raise TrialError(f"run {run_id}: output {record.output}, not {fanflow.expected(n)}")
        for stored in store.history(run_id):
            event = stored.event
            if isinstance(event, NodeStarted):
                starts.append(stored.at)
                by_worker[event.worker] += 1
                first = first_by_worker.get(event.worker, stored.at)
                first_by_worker[event.worker] = min(first, stored.at)
            elif isinstance(event, RunCompleted):
                ends.append(stored.at)
    if len(ends) != runs:
        raise TrialError(f"{len(ends)} RunCompleted events in {runs} histories")
    return Trial(
        backend=backend,
        workers=workers,
        runs=runs,
        nodes=len(starts),
        active_s=max(ends) - min(starts),
        wall_s=wall,
        ramp_s=max(first_by_worker.values()) - min(first_by_worker.values()),
        per_worker=sorted(by_worker.values(), reverse=True),
    )


def measure(
    runs: int, worker_counts: Sequence[int] = (1, 2, 4), sync: str = "normal"
) -> dict[str, Any]:
    """Every (backend, worker count) trial, each on a fresh database; a backend that
    cannot be used is reported as ``{"skipped": reason}``."""
    result: dict[str, Any] = {"runs": runs, "nodes_per_run": fanflow.NODES_PER_RUN,
                              "worker_counts": list(worker_counts)}  # fmt: skip
    for backend in BACKENDS:
        trials: dict[str, Any] = {}
        for workers in worker_counts:
            try:
                with fresh_database(backend, sync) as (url, store):
                    trials[str(workers)] = trial(backend, url, store, workers, runs).summary()
            except UnavailableError as exc:
                trials = {"skipped": str(exc)}
                break
        result[backend] = trials
    return result
