"""Ordinary load, no fault injected: three ``keel worker`` processes share 100 runs of a map
fed a few items at a time, on PostgreSQL and on one SQLite file. Every run must finish.

Before transitions were checked against the exact head they were decided on, about one
run in five hung here on PostgreSQL (one in ten on SQLite): a group commit let a
transition through on top of a refused one whose place another process had filled with
as many events, and a map item was never scheduled.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.runtime.operations.control import start_run
from keel.store.protocol import Store
from keel.store.sqlite import SQLiteStore
from tests.chaos import mapflow
from tests.postgres import PostgresStore, fresh_url, open_postgres
from tests.processes import stop_workers

HERE = Path(__file__).parent
FLOW = HERE / "mapflow.py"
ROOT = HERE.parents[1]
RUNS = 100
WORKERS = 3
#: a hang guard, not a timed assertion
DEADLINE = 240.0

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Store]]:
    """A URL for the workers and a store open on the same database."""
    if request.param == "sqlite":
        path = tmp_path / "keel.db"
        sqlite = SQLiteStore(path)
        yield f"sqlite:///{path}", sqlite
        sqlite.close()
        return
    url = fresh_url()
    postgres: PostgresStore = open_postgres(url)
    try:
        yield url, postgres
    finally:
        postgres.drop_schema()
        postgres.close()


def _start_workers(url: str, tmp_path: Path) -> list[tuple[subprocess.Popen[bytes], Path]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = []
    for n in range(WORKERS):
        log = tmp_path / f"worker-{n}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "keel", "worker", str(FLOW), "--concurrency", "8",
                 "--db", url],
                env=env, cwd=ROOT, stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip
        workers.append((proc, log))
    return workers


@pytest.mark.timeout(DEADLINE + 120)
def test_every_run_finishes_with_three_workers(database: tuple[str, Store], tmp_path: Path) -> None:
    url, store = database
    run_ids = {
        start_run(store, mapflow.fed.spec, {"n": n}, origin=str(FLOW)).id: n for n in range(RUNS)
    }
    workers = _start_workers(url, tmp_path)
    try:
        until = time.monotonic() + DEADLINE
        unfinished = set(run_ids)
        while unfinished and time.monotonic() < until:
            for proc, log in workers:
                assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            unfinished = {
                run_id for run_id in unfinished
                if store.get_run(run_id).status not in ("succeeded", "failed", "cancelled")
            }  # fmt: skip
            time.sleep(0.5)
    finally:
        stop_workers(proc for proc, _ in workers)
    stuck = {
        run_id: (store.get_run(run_id).status, store.ready_count(run_id), store.leases(run_id))
        for run_id in unfinished
    }
    assert not stuck, f"{len(stuck)} of {RUNS} runs never finished: {stuck}"
    for run_id, n in run_ids.items():
        record = store.get_run(run_id)
        assert record.status == "succeeded", (run_id, record.reason)
        assert record.output == mapflow.expected(n), run_id
