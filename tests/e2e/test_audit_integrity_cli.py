"""Integrity holes a new user's walkthrough found, closed, end to end in real ``python -m
keel`` processes on a SQLite file: a checkpoint signed by an intruder's key cannot push
the trusted one out of an export; a prune cannot hide a rewrite (``keel audit check``
and offline verify compare the tombstone's head with the signed one); an honest prune
checks clean; ``keel prune`` never tombstones a history that does not verify.
"""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest

from tests.contract.test_signed_checkpoints import rewrite
from tests.e2e.test_audit_cli import configure, finished_run, intruder, keygen
from tests.e2e.test_run_cli import Keel


@pytest.fixture
def keel(tmp_path: Path) -> Keel:
    from tests.e2e import test_run_cli

    return test_run_cli.keel.__wrapped__(tmp_path)  # type: ignore[attr-defined, no-any-return]


def rewritten(keel: Keel, run_id: str) -> None:
    """An output changed and the chain recomputed after it, as an intruder would."""
    seq = next(e["seq"] for e in keel.history(run_id)
               if e["kind"] == "node_succeeded" and e["node"] == "parse_number")  # fmt: skip
    store = intruder(keel)
    try:
        rewrite(store, run_id, seq, lambda event: event.update(output=33))
    finally:
        store.close()


def test_an_intruders_newest_checkpoint_does_not_hide_the_trusted_one(keel: Keel) -> None:
    trusted = keygen(keel, "trusted.pem")
    configure(keel, "trusted.pem")
    run_id = finished_run(keel)
    keel.ok("audit", "checkpoint")
    rewritten(keel, run_id)
    keygen(keel, "intruder.pem")
    configure(keel, "intruder.pem")
    keel.ok("audit", "checkpoint")  # the newest, by the intruder's key
    (keel.cwd / "trusted.pub").write_text(trusted["public_key"] + "\n")
    keel.ok("audit", "export", run_id, "-o", "forged.jsonl")

    checked = keel("audit", "verify", "forged.jsonl", "--key", "trusted.pub")

    assert checked.returncode == 1, checked.stdout
    said = " ".join(checked.stdout.split())
    assert "rewritten after the checkpoint" in said  # the trusted checkpoint was carried
    assert "which is not one of the keys given with --key" in said
    assert all(len(line) <= 80 for line in checked.stdout.splitlines()), checked.stdout
    unanchored = keel("audit", "verify", "forged.jsonl")
    assert "no signature is anchored" in " ".join(unanchored.stdout.split())


def test_a_prune_does_not_hide_a_rewrite_and_an_honest_prune_checks_clean(
    keel: Keel,
) -> None:
    made = keygen(keel, "audit.pem")
    configure(keel, "audit.pem")
    honest, forged = finished_run(keel), finished_run(keel)
    keel.ok("audit", "checkpoint")
    rewritten(keel, forged)
    assert keel("verify", forged).returncode == 0  # consistent: the chain is intact
    keel.ok("prune", "--older-than", "0s", "--yes")

    failed = keel("audit", "check")
    said = " ".join(failed.stdout.split())
    assert failed.returncode == 1, said
    assert f"run {forged}: pruned with a head other than the one signed" in said
    assert f"run {honest}:" not in said
    assert "1 run changed since" in said
    (keel.cwd / "audit.pub").write_text(made["public_key"] + "\n")
    keel.ok("audit", "export", "-o", "all.jsonl")
    verified = keel("audit", "verify", "all.jsonl", "--key", "audit.pub")
    assert verified.returncode == 1
    assert "pruned with a head other than the one signed" in " ".join(verified.stdout.split())

    keel.ok("audit", "checkpoint")  # after the prune: both runs as their tombstones say
    code = keel("audit", "check").returncode
    assert code == 0, keel("audit", "check").stdout


def test_prune_holds_back_a_run_whose_history_does_not_verify(keel: Keel) -> None:
    keygen(keel, "audit.pem")
    configure(keel, "audit.pem")
    broken, whole = finished_run(keel), finished_run(keel)
    with sqlite3.connect(keel.db) as db:  # edited without recomputing the chain
        db.execute("UPDATE events SET data = data || ' ' "
                   "WHERE run_id = ? AND seq = 2", (broken,))  # fmt: skip
    dry = json.loads(keel.ok("prune", "--older-than", "0s", "--dry-run", "--json").stdout)
    assert dry["pruned"] == [whole]
    (kept,) = dry["kept"]
    assert kept["run_id"] == broken
    assert kept["why"].startswith("its history does not verify: ")
    pruned = keel.ok("prune", "--older-than", "0s", "--yes")
    assert f"kept run {broken[:8]}: its history does not verify" in pruned.stdout
    assert keel("verify", broken).returncode == 1  # its events are still there to show it


def test_keygen_makes_its_folder_private_and_says_json(keel: Keel) -> None:
    made = json.loads(keel.ok("audit", "keygen", "secrets/keel-audit.pem", "--json").stdout)
    assert set(made) == {"key_id", "public_key", "file"}
    assert stat.S_IMODE((keel.cwd / "secrets").stat().st_mode) == 0o700
    shown = keel("audit", "check", "--key", str(keel.cwd / "secrets/keel-audit.pem"))
    assert shown.returncode == 2
    assert "this is a private key" in shown.stderr


def test_an_empty_export_warns_and_an_existing_file_is_not_overwritten(keel: Keel) -> None:
    finished_run(keel)
    empty = keel.ok("audit", "export", "--workflow", "nosuch", "-o", "none.jsonl")
    said = " ".join(empty.stderr.split())
    assert "warning: exported no runs: no run of workflow 'nosuch'" in said
    assert "sequential" in said  # which workflows do have runs
    window = keel.ok("audit", "export", "--since", "1d", "--until", "2d", "-o", "w.jsonl")
    assert "the window holds no time" in " ".join(window.stderr.split())
    again = keel("audit", "export", "-o", "none.jsonl")
    assert again.returncode == 2
    assert "give --force" in " ".join(again.stderr.split())
    keel.ok("audit", "export", "-o", "none.jsonl", "--force")
    assert "1 run, " in keel.ok("audit", "verify", "none.jsonl").stdout


def test_audit_output_fits_80_columns_when_piped(keel: Keel) -> None:
    keygen(keel, "a-rather-long-folder-name-for-keys/and-a-long-key-file-name.pem")
    configure(keel, "a-rather-long-folder-name-for-keys/and-a-long-key-file-name.pem")
    finished_run(keel)
    narrow = Keel(keel.cwd, {**keel.env, "COLUMNS": "80"}, keel.db)
    outputs = [narrow("audit", "key"), narrow("audit", "export", "--since", "banana"),
               narrow("prune", "--older-than", "3x")]  # fmt: skip
    for result in outputs:
        for line in (result.stdout + result.stderr).splitlines():
            assert len(line) <= 80, line
