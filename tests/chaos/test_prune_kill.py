"""``keel prune`` killed with SIGKILL in the middle of a batch's transaction: every run is
either pruned with its tombstone or untouched (its events, input and output intact),
and pruning again finishes the job with every run verifying."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from keel.audit.pruned import VALID, check_pruned
from keel.audit.signing import SigningKey
from keel.store.chain import verify_chain
from keel.store.sqlite import SQLiteStore
from tests.contract.conftest import finished_three_node_run

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def _keel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "keel", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_a_prune_killed_inside_a_batch_leaves_no_run_half_pruned(tmp_path: Path) -> None:
    db = tmp_path / "keel.db"
    key = SigningKey.generate()
    key.save(tmp_path / "audit.pem")
    store = SQLiteStore(db)
    runs = [finished_three_node_run(store, f"run-{n}").run_id for n in range(5)]
    inputs = {run_id: store.get_run(run_id).input for run_id in runs}
    store.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": f"sqlite:///{db}",
           "KEEL_AUDIT_KEY_FILE": str(tmp_path / "audit.pem")}  # fmt: skip

    killed = subprocess.run(
        [sys.executable, str(HERE / "kill_in_prune.py"), str(db), str(tmp_path / "audit.pem"),
         "2"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert killed.returncode == -signal.SIGKILL, killed.stderr
    store = SQLiteStore(db)
    keys = {key.key_id: key.public_key}
    pruned = [run_id for run_id in runs if store.get_run(run_id).pruned_at is not None]
    assert pruned == runs[:2]  # the first batch committed, the second was killed
    for run_id in runs:
        record = store.get_run(run_id)
        if run_id in pruned:
            check = check_pruned(record, store.tombstone(run_id), 0, keys)
            assert check.intact, check.problems
        else:
            assert store.tombstone(run_id) is None
            assert record.input == inputs[run_id]
            links = store.chain_links(run_id)
            assert len(links) == 11
            assert verify_chain(run_id, links, record.last_seq, record.head_hash).intact
    store.close()

    again = _keel("prune", "--older-than", "0s", "--yes", env=env)
    assert again.returncode == 0, again.stderr
    assert "pruned 3 runs" in again.stdout
    verified = _keel("verify", "--all", env=env)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.count("✓ run") == 5
    store = SQLiteStore(db)
    for run_id in runs:
        check = check_pruned(store.get_run(run_id), store.tombstone(run_id), 0, keys)
        assert check.signature == VALID
    store.close()
