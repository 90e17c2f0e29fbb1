"""Crash tests with real processes: a 54-node run (chain, fan-out/fan-in, map) is killed
with SIGKILL at random moments, and inside write transactions, then resumed with
``keel resume``. Every test checks that the run completes with the right output, that
each node's result is recorded exactly once, that no node recorded as succeeded runs
again, and that every re-execution is explained by a reclaimed lease (the tasks append
their idempotency keys to a file; the test counts them).
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from keel.engine.events import (
    NodeFailed,
    NodeReclaimed,
    NodeScheduled,
    NodeStarted,
    NodeSucceeded,
)
from keel.store.chain import verify_chain
from keel.store.sqlite import SQLiteStore
from tests.chaos import crashflow

HERE = Path(__file__).parent
FLOW = HERE / "crashflow.py"
ROOT = HERE.parents[1]
#: attempts in a complete run: 53 task nodes + 8 map items
EXECUTIONS = 61

pytestmark = pytest.mark.slow


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KEEL_DATABASE_URL": f"sqlite:///{tmp_path / 'keel.db'}",
        "KEEL_TEST_KEYS": str(tmp_path / "keys.txt"),
        "KEEL_TEST_SLEEP": "0.003",
        "PYTHONPATH": str(ROOT),
    }


def _keys(tmp_path: Path) -> list[str]:
    path = tmp_path / "keys.txt"
    return path.read_text().split() if path.exists() else []


def _kill_after(proc: subprocess.Popen[bytes], tmp_path: Path, executions: int) -> bool:
    """SIGKILL the process once ``executions`` task runs are in the keys file (plus a
    random few milliseconds); False if it ended first."""
    while len(_keys(tmp_path)) < executions:
        if proc.poll() is not None:
            return False
        time.sleep(0.001)
    time.sleep(random.uniform(0, 0.004))
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def _only_run(tmp_path: Path) -> str | None:
    store = SQLiteStore(tmp_path / "keel.db")
    try:
        runs = store.list_runs()
    finally:
        store.close()
    assert len(runs) <= 1
    return runs[0].id if runs else None


def _status(tmp_path: Path, run_id: str) -> str:
    store = SQLiteStore(tmp_path / "keel.db")
    try:
        return store.get_run(run_id).status
    finally:
        store.close()


def _check(tmp_path: Path, run_id: str) -> collections.Counter[tuple[str, int | None]]:
    """Everything a crash must not break; returns the reclaims per (node, item)."""
    store = SQLiteStore(tmp_path / "keel.db")
    try:
        record = store.get_run(run_id)
        history = store.history(run_id)
        report = verify_chain(run_id, store.chain_links(run_id), record.last_seq,
                              record.head_hash)  # fmt: skip
    finally:
        store.close()
    assert record.status == "succeeded", record.reason
    assert record.output == crashflow.expected()
    assert report.intact, report.problems

    succeeded: dict[tuple[str, int | None], int] = {}
    reclaimed: collections.Counter[tuple[str, int | None]] = collections.Counter()
    for stored in history:
        event = stored.event
        if isinstance(event, NodeSucceeded):
            key = (event.node, event.item)
            assert key not in succeeded, f"{key} recorded twice"
            succeeded[key] = stored.seq
        elif isinstance(event, NodeStarted):
            key = (event.node, event.item)
            assert key not in succeeded, f"{key} started again after its result was recorded"
        elif isinstance(event, NodeReclaimed):
            reclaimed[(event.node, event.item)] += 1

    ran: collections.Counter[tuple[str, int | None]] = collections.Counter()
    for key in _keys(tmp_path):
        run, node, _attempt = key.rsplit(":", 2)
        assert run == run_id
        item = None
        if node.endswith("]"):
            node, index = node[:-1].split("[")
            item = int(index)
        ran[(node, item)] += 1
    executed = {key for key in succeeded if key[0] != "square" or key[1] is not None}
    assert set(ran) == executed, "every task ran, and only those"
    for key, count in ran.items():
        assert count <= 1 + reclaimed[key], (
            f"{key} ran {count} times but was reclaimed only {reclaimed[key]} times"
        )
    return reclaimed


def _keel(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A keel command whose output goes to a log file beside the database."""
    log = Path(env["KEEL_TEST_KEYS"]).with_name("keel.log")
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "keel", *args], env=env, cwd=ROOT,
            stdout=out, stderr=out,
        )  # fmt: skip


def _log(tmp_path: Path) -> str:
    return (tmp_path / "keel.log").read_text(errors="replace")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_sigkill_at_random_moments_then_resume(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    env = _env(tmp_path)
    interrupted = 0
    proc = _keel("run", str(FLOW), "-q", env=env)
    interrupted += _kill_after(proc, tmp_path, rng.randrange(1, 20))
    for _ in range(3):
        run_id = _only_run(tmp_path)
        assert run_id is not None
        done = len(_keys(tmp_path))
        proc = _keel("resume", run_id, "-q", "--yes", env=env)
        interrupted += _kill_after(proc, tmp_path, done + rng.randrange(1, 20))
    run_id = _only_run(tmp_path)
    assert run_id is not None
    if _status(tmp_path, run_id) != "succeeded":  # a resume above may have finished it
        final = _keel("resume", run_id, "-q", "--yes", env=env)
        assert final.wait(timeout=60) == 0, _log(tmp_path)
    assert interrupted >= 3, "the kills must land while the run is in progress"
    reclaimed = _check(tmp_path, run_id)
    assert sum(reclaimed.values()) >= 1, "a killed process held work that was taken back"


@pytest.mark.parametrize("kill_at", [1, 2, 3, 9, 30, 45, 60])
def test_sigkill_inside_a_write_transaction_then_resume(tmp_path: Path, kill_at: int) -> None:
    """The Nth write dies after its rows are written and before COMMIT: the first write
    starts the run, then outcomes (each leasing what it makes ready) and claims. A run
    makes at least 62 writes (its start and one per outcome), so every N here lands."""
    env = _env(tmp_path)
    driver = subprocess.run(
        [sys.executable, str(HERE / "kill_in_commit.py"), str(tmp_path / "keel.db"),
         str(kill_at)],
        env=env, cwd=ROOT, capture_output=True, check=False,
    )  # fmt: skip
    assert driver.returncode == -signal.SIGKILL, driver.stderr.decode()
    run_id = _only_run(tmp_path)
    if run_id is None:  # killed while creating the run: nothing of it may remain
        assert kill_at == 1
        driver = subprocess.run(
            [sys.executable, str(HERE / "kill_in_commit.py"), str(tmp_path / "keel.db"), "0"],
            env=env, cwd=ROOT, capture_output=True, check=False,
        )  # fmt: skip
        assert driver.returncode == 0, driver.stderr.decode()
        run_id = _only_run(tmp_path)
        assert run_id is not None
    else:
        resumed = _keel("resume", run_id, "-q", "--yes", env=env)
        assert resumed.wait(timeout=60) == 0, _log(tmp_path)
    _check(tmp_path, run_id)


def test_a_retry_waiting_for_its_backoff_survives_a_crash_and_runs_once(tmp_path: Path) -> None:
    """The retry's wait is a row on the ready queue, not a sleep: a process killed
    during the backoff loses nothing, and the resumed run retries exactly once, not
    before the backoff has passed."""
    env = _env(tmp_path)
    proc = _keel("run", str(HERE / "retryflow.py"), "-i", "amount=7", "-q", env=env)
    run_id = None
    for _ in range(2000):  # until the first attempt's failure is recorded
        run_id = _only_run(tmp_path)
        if run_id is not None and _events(tmp_path, run_id, NodeFailed):
            break
        assert proc.poll() is None, _log(tmp_path)
        time.sleep(0.005)
    assert run_id is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _keys(tmp_path) == [f"{run_id}:charge:1"], "killed before the retry was due"
    shown = subprocess.run(
        [sys.executable, "-m", "keel", "show", run_id, "--json"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    (charge,) = [node for node in json.loads(shown.stdout)["nodes"] if node["id"] == "charge"]
    assert charge["retry_at"] == _events(tmp_path, run_id, NodeScheduled)[1].not_before
    assert charge["error"]["type"] == "ConnectionError"

    resumed = _keel("resume", run_id, "-q", "--yes", env=env)
    assert resumed.wait(timeout=60) == 0, _log(tmp_path)

    assert _keys(tmp_path) == [f"{run_id}:charge:1", f"{run_id}:charge:2"]
    (failed,) = _events(tmp_path, run_id, NodeFailed)
    scheduled = _events(tmp_path, run_id, NodeScheduled)
    started = _events(tmp_path, run_id, NodeStarted)
    assert [e.attempt for e in scheduled] == [1, 2]
    assert [e.attempt for e in started] == [1, 2]
    assert failed.attempt == 1
    assert scheduled[1].not_before is not None
    store = SQLiteStore(tmp_path / "keel.db")
    try:
        record = store.get_run(run_id)
        history = store.history(run_id)
    finally:
        store.close()
    assert (record.status, record.output) == ("succeeded", {"result": {"charged": 7, "attempt": 2}})
    failed_at = next(s.at for s in history if isinstance(s.event, NodeFailed))
    second_start = [s.at for s in history if isinstance(s.event, NodeStarted)][1]
    assert scheduled[1].not_before == failed_at + 1.5
    assert second_start >= scheduled[1].not_before


def _events(tmp_path: Path, run_id: str, kind: type[Any]) -> list[Any]:
    store = SQLiteStore(tmp_path / "keel.db")
    try:
        return [s.event for s in store.history(run_id) if isinstance(s.event, kind)]
    finally:
        store.close()
