"""The auditor's story end to end, with keel's commands only: sign a checkpoint, let an
intruder rewrite a run's whole chain in the database, export, and verify the export
offline trusting only the published public key. ``keel verify`` passes (the chain was
recomputed); the export's own checkpoint (``keel audit export`` carries the newest)
fails it, naming the run; a signed approval in the export verifies."""

from __future__ import annotations

import json
from pathlib import Path

from tests.contract.test_signed_checkpoints import rewrite
from tests.e2e.test_audit_cli import approved_run, configure, finished_run, intruder, keel, keygen
from tests.e2e.test_run_cli import Keel

__all__ = ["keel"]


def test_an_export_carries_the_checkpoint_that_exposes_a_rewritten_run(
    keel: Keel, tmp_path: Path
) -> None:
    made = keygen(keel, "audit.pem")
    configure(keel, "audit.pem")
    edited, bystander = finished_run(keel), finished_run(keel)
    approved = approved_run(keel)
    keel.ok("audit", "checkpoint")
    (tmp_path / "trusted.pub").write_text(made["public_key"] + "\n")

    before = tmp_path / "before.jsonl"
    keel.ok("audit", "export", "-o", str(before))
    intact = keel("audit", "verify", str(before), "--key", str(tmp_path / "trusted.pub"))
    assert intact.returncode == 0, intact.stdout + intact.stderr
    lines = [json.loads(line) for line in before.read_text().splitlines()]
    assert [line["type"] for line in lines].count("checkpoint") == 1
    assert {line["key_id"] for line in lines if line["type"] == "key"} == {made["key_id"]}
    decided = [line for line in lines if line["type"] == "event"
               and line.get("kind") == "approval_decided"]  # fmt: skip
    assert [line["run_id"] for line in decided] == [approved]

    store = intruder(keel)
    try:
        seq = next(e["seq"] for e in keel.history(edited)
                   if e["kind"] == "node_succeeded" and e["node"] == "parse_number")  # fmt: skip
        rewrite(store, edited, seq, lambda event: event.update(output=33))
    finally:
        store.close()
    assert keel("verify", edited).returncode == 0

    after = tmp_path / "after.jsonl"
    keel.ok("audit", "export", "-o", str(after))
    failed = keel("audit", "verify", str(after), "--key", made["public_key"])
    assert failed.returncode == 1
    said = failed.stdout + failed.stderr
    assert edited in said
    assert bystander not in said
    assert approved not in said

    none = tmp_path / "none.jsonl"
    keel.ok("audit", "export", "--checkpoints", "none", "-o", str(none))
    alone = keel("audit", "verify", str(none), "--key", made["public_key"])
    assert alone.returncode == 0  # an export alone cannot tell a consistent rewrite
