"""A chaos test with real ``keel worker`` processes on PostgreSQL whose connections are
cut: while runs execute, the controller terminates every backend the workers hold
(``pg_terminate_backend``, what a failover or a server restart does to a client). The
workers must reconnect and go on: every run completes with the right output, each
attempt runs and is recorded exactly once (a connection loss is not a worker's death, so
nothing is reclaimed), the workers are still alive at the end, and each lost connection
costs one line in the log, never a traceback.

Each worker names its connections with ``application_name`` (in its database URL), so
the controller cuts only this test's workers and not the other users of the server.
"""

from __future__ import annotations

import collections
import os
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from keel.engine.events import NodeReclaimed, NodeStarted, NodeSucceeded
from keel.runtime.operations.control import start_run
from keel.store.chain import verify_chain
from tests.chaos import fanflow
from tests.chaos.test_distributed import _keys
from tests.postgres import URL, fresh_url, open_postgres
from tests.processes import stop_workers

if TYPE_CHECKING:
    from keel.store.postgres import PostgresStore

HERE = Path(__file__).parent
FLOW = HERE / "fanflow.py"
ROOT = HERE.parents[1]
RUNS = 60
WORKERS = 2
SEED = 11
#: seconds between cuts, drawn at random
CUT_EVERY = (0.2, 0.6)
#: a hang guard, not a timed assertion
DEADLINE = 240.0
#: what a worker logs when it notices a lost connection (store calls and the listener)
LOST = "lost the connection"

pytestmark = pytest.mark.slow


@pytest.fixture
def database() -> Iterator[tuple[str, PostgresStore]]:
    url = fresh_url()
    store = open_postgres(url)
    try:
        yield url, store
    finally:
        store.drop_schema()
        store.close()


def _cut(tag: str) -> int:
    """Terminate every backend whose application_name starts with ``tag``; how many."""
    with psycopg.connect(URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name LIKE %s AND pid <> pg_backend_pid()",
            (tag + "%",),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.timeout(360)
def test_workers_survive_their_connections_being_cut_and_finish_every_run(
    database: tuple[str, PostgresStore], tmp_path: Path
) -> None:
    url, store = database
    tag = f"kt{secrets.token_hex(4)}"
    rng = random.Random(SEED)
    env = {
        **os.environ,
        "KEEL_TEST_KEYS": str(tmp_path / "keys.txt"),
        "KEEL_TEST_SLEEP": "0.1",
        "PYTHONPATH": str(ROOT),
    }
    logs = [tmp_path / f"worker-{n}.log" for n in range(WORKERS)]
    workers: list[subprocess.Popen[bytes]] = []
    for n, log in enumerate(logs):
        db = f"{url}&application_name={tag}-{n}"
        command = [sys.executable, "-m", "keel", "worker", str(FLOW), "-c", "4", "--db", db]
        with log.open("wb") as out:
            workers.append(
                subprocess.Popen(
                    command, env=env, cwd=ROOT, stdout=out, stderr=out, stdin=subprocess.DEVNULL
                )
            )

    def shown() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in logs)

    cut = cuts = 0
    try:
        inputs = {
            start_run(store, fanflow.fan.spec, {"n": n}, origin=str(FLOW)).id: n
            for n in range(RUNS)
        }
        deadline = time.monotonic() + DEADLINE
        next_cut = time.monotonic() + rng.uniform(*CUT_EVERY)
        while len(store.list_runs(status="succeeded", limit=RUNS + 1)) < RUNS:
            bad = [r.id for s in ("failed", "cancelled") for r in store.list_runs(status=s)]
            assert not bad, f"runs ended badly: {bad}\n{shown()}"
            for proc in workers:
                assert proc.poll() is None, f"worker {proc.pid} died\n{shown()}"
            assert time.monotonic() < deadline, f"runs did not finish\n{shown()}"
            if time.monotonic() >= next_cut:
                found = _cut(tag)
                cut += found
                cuts += found > 0
                next_cut = time.monotonic() + rng.uniform(*CUT_EVERY)
            time.sleep(0.05)
        for proc in workers:
            assert proc.poll() is None, f"worker {proc.pid} died\n{shown()}"
    finally:
        stop_workers(workers)
    assert [proc.returncode for proc in workers] == [0] * WORKERS, shown()
    assert cuts >= 3, f"only {cuts} cuts landed while runs were executing"

    text = "\n".join(log.read_text(errors="replace") for log in logs)
    assert "Traceback" not in text, shown()
    lost = [line for line in text.splitlines() if LOST in line]
    assert 1 <= len(lost) <= cut, (len(lost), cut, shown())
    print(f"{cuts} cuts terminated {cut} connections; the workers logged {len(lost)} losses")

    ran = _keys(tmp_path)
    for run_id, n in inputs.items():
        record = store.get_run(run_id)
        assert record.status == "succeeded", (run_id, record.reason)
        assert record.output == fanflow.expected(n), run_id
        report = verify_chain(run_id, store.chain_links(run_id), record.last_seq,
                              record.head_hash)  # fmt: skip
        assert report.intact, (run_id, report.problems)
        history = [stored.event for stored in store.history(run_id)]
        assert not [e for e in history if isinstance(e, NodeReclaimed)], run_id
        succeeded = collections.Counter(
            (e.node, e.item) for e in history if isinstance(e, NodeSucceeded)
        )
        assert set(succeeded.values()) == {1}, (run_id, succeeded)
        started = collections.Counter(
            (e.node, e.item, e.attempt) for e in history if isinstance(e, NodeStarted)
        )
        assert set(started.values()) == {1}, (run_id, started)
        executed = {key[1:]: count for key, count in ran.items() if key[0] == run_id}
        assert executed == {a: 1 for a in started if a[:2] != ("work", None)}, run_id
