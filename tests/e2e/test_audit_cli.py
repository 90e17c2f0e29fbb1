"""Signing keys and signed checkpoints end to end, in real ``python -m keel`` processes
on a SQLite file: ``keel audit keygen``, ``key``, ``checkpoint``, ``checkpoints`` and
``check``, approvals signed by ``keel approve`` and by ``keel serve``, the tamper test
(``keel verify`` passes a consistently rewritten run, ``keel audit check`` names it), a
key rotation, and the refusals of bad input.

The tampering is done by this test process on the database file, as an intruder with
write access would (``tests.contract.test_signed_checkpoints.rewrite``).
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest

from keel.store.sqlite import SQLiteStore
from tests.contract.test_signed_checkpoints import rewrite
from tests.e2e.test_run_cli import Keel, find
from tests.e2e.test_run_cli import flow as run_flow
from tests.e2e.test_serve_e2e import answering
from tests.e2e.test_waiting_cli import flow as wait_flow
from tests.processes import free_port, stop_workers, until


@pytest.fixture
def keel(tmp_path: Path) -> Keel:
    from tests.e2e import test_run_cli

    return test_run_cli.keel.__wrapped__(tmp_path)  # type: ignore[attr-defined, no-any-return]


def configure(keel: Keel, key_file: str, trusted: list[str] | None = None) -> None:
    lines = ["[audit]", f'key_file = "{key_file}"']
    if trusted is not None:
        lines.append(f"trusted_keys = {json.dumps(trusted)}")
    (keel.cwd / "keel.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def keygen(keel: Keel, name: str) -> dict[str, str]:
    """Make a key; its id and public key as printed."""
    out = keel.ok("audit", "keygen", name).stdout
    said = dict(
        line.split(":", 1) for line in out.splitlines() if line.startswith(("key id", "public"))
    )
    return {"key_id": said["key id"].strip(), "public_key": said["public key"].strip()}


def finished_run(keel: Keel) -> str:
    ran = keel.run(run_flow("sequential"), "--input", '{"text": "32"}')
    assert ran.proc.returncode == 0, ran.proc.stderr
    return ran.run_id


def approved_run(keel: Keel, by: str = "ann") -> str:
    """A run of ``gate_then_signal`` whose gate ``by`` approved (with this folder's
    audit settings), now waiting for its signal."""
    keel.ok("deploy", wait_flow("gate_then_signal"))
    run_id = keel.ok("start", "gate_then_signal").stdout.strip()
    keel.ok("approve", run_id, "gate", "--by", by, "--comment", "looks right")
    return run_id


def check_json(keel: Keel, *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = keel("audit", "check", "--json", *args)
    assert result.stdout, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return result.returncode, found


def intruder(keel: Keel) -> SQLiteStore:
    return SQLiteStore(keel.db)


def test_a_rewritten_history_passes_keel_verify_but_not_keel_audit_check(keel: Keel) -> None:
    made = keygen(keel, "audit.pem")
    assert stat.S_IMODE((keel.cwd / "audit.pem").stat().st_mode) == 0o600
    configure(keel, "audit.pem")
    shown = keel.ok("audit", "key", "--json")
    assert json.loads(shown.stdout)["key_id"] == made["key_id"]
    edited, bystander = finished_run(keel), finished_run(keel)
    approved = approved_run(keel)
    (decision,) = find(keel.history(approved), "approval_decided", "gate")
    assert decision["signature"]["key_id"] == made["key_id"]
    wide = Keel(keel.cwd, {**keel.env, "COLUMNS": "200"}, keel.db)  # details not shortened
    assert f"signed by key {made['key_id']}" in wide.ok("history", approved).stdout
    assert f"(signed by key {made['key_id']})" in keel.ok("show", approved).stdout

    made_cp = json.loads(keel.ok("audit", "checkpoint", "--json").stdout)
    assert (made_cp["id"], made_cp["runs"], made_cp["key_id"]) == (1, 3, made["key_id"])
    listed = json.loads(keel.ok("audit", "checkpoints", "--json").stdout)
    assert [c["id"] for c in listed] == [1]
    clean = " ".join(keel.ok("audit", "check").stdout.split())
    assert "checkpoint 1 (" in clean
    assert f"3 runs as signed, key {made['key_id']}" in clean
    assert "signed approvals verify: 1" in clean

    store = intruder(keel)
    try:
        seq = next(e["seq"] for e in keel.history(edited)
                   if e["kind"] == "node_succeeded" and e["node"] == "parse_number")  # fmt: skip
        rewrite(store, edited, seq, lambda event: event.update(output=33))
    finally:
        store.close()

    assert keel("verify", edited).returncode == 0  # the chain is intact: recomputed
    failed = keel("audit", "check")
    assert failed.returncode == 1
    assert f"run {edited}" in failed.stdout
    assert bystander not in failed.stderr + failed.stdout
    assert "1 run changed since" in failed.stdout
    assert failed.stderr == ""  # the whole report is on standard output
    code, (found,) = check_json(keel, "1")
    assert code == 1
    assert found["failed_runs"] == [edited]
    assert found["signature_problem"] is None


def test_old_checkpoints_verify_after_a_rotation_while_the_old_key_is_trusted(keel: Keel) -> None:
    old = keygen(keel, "old.pem")
    configure(keel, "old.pem")
    finished_run(keel)
    keel.ok("audit", "checkpoint")

    new = keygen(keel, "new.pem")
    configure(keel, "new.pem")  # rotated, the old key not trusted (yet)
    keel.ok("audit", "checkpoint")
    refused = keel("audit", "check", "--all")
    assert refused.returncode == 1
    said = " ".join(refused.stdout.split())
    assert f"signed by key {old['key_id']}, which is not a trusted key" in said
    assert "1 signature by a key not trusted" not in said  # the checkpoint's own, not a run's
    assert "its signature fails" in said
    _, found = check_json(keel, "--all")
    assert [(f["id"], f["ok"]) for f in found] == [(1, False), (2, True)]

    configure(keel, "new.pem", trusted=[old["public_key"]])
    assert keel("audit", "check", "--all").returncode == 0
    key = json.loads(keel.ok("audit", "key", "--json").stdout)
    assert key["key_id"] == new["key_id"]
    assert key["trusted_keys"] == [{"key_id": old["key_id"], "public_key": old["public_key"]}]
    assert keel("audit", "check", "1", "--key", old["public_key"]).returncode == 0
    only_new = keel("audit", "check", "1", "--key", new["public_key"])
    assert only_new.returncode == 1, "--key replaces the configured keys"


def test_an_approval_edited_in_the_database_fails_its_signature(keel: Keel) -> None:
    keygen(keel, "audit.pem")
    configure(keel, "audit.pem")
    run_id = approved_run(keel)
    seq = find(keel.history(run_id), "approval_decided", "gate")[0]["seq"]
    store = intruder(keel)
    try:
        rewrite(store, run_id, seq, lambda event: event.update(by="mallory"))
    finally:
        store.close()
    keel.ok("audit", "checkpoint")  # signed after the edit: only the approval can tell

    failed = keel("audit", "check")

    assert failed.returncode == 1
    said = " ".join(failed.stdout.split())
    assert f"run {run_id}: approval 'gate'" in said
    assert "does not match what it signs" in said
    assert "1 signature that does not verify" in said
    assert "changed since" not in said


def test_approvals_decided_without_a_key_are_unsigned_a_warning(keel: Keel) -> None:
    run_id = approved_run(keel)  # no key configured
    (decision,) = find(keel.history(run_id), "approval_decided", "gate")
    assert "signature" not in decision
    keygen(keel, "audit.pem")
    configure(keel, "audit.pem")
    keel.ok("audit", "checkpoint")

    checked = keel("audit", "check")

    assert checked.returncode == 0, checked.stderr
    assert "warning: 1 unsigned approval (decided where" in checked.stdout
    assert f"run {run_id}: approval 'gate'" in checked.stdout
    assert checked.stderr == ""


def test_bad_input_is_refused_with_what_to_do(keel: Keel) -> None:
    def refused(*args: str, code: int = 1) -> str:
        result = keel(*args)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return result.stderr

    finished_run(keel)  # the database
    for args in (("audit", "checkpoint"), ("audit", "key")):
        said = refused(*args)
        assert "no audit signing key is configured" in said
        assert "keel audit keygen" in said
    assert "no trusted key" in refused("audit", "check")
    (keel.cwd / "keel.toml").write_text('[audit]\ncheckpoint_every = "1h"\n')
    said = refused("worker")
    assert "checkpoint_every needs a signing key" in said
    assert "keel audit keygen" in said
    made = keygen(keel, "audit.pem")
    assert "exists: a key is never overwritten" in refused("audit", "keygen", "audit.pem")
    configure(keel, "audit.pem")
    assert "there is no checkpoint to check" in refused("audit", "check")
    assert "keel audit checkpoint" in refused("audit", "check")
    keel.ok("audit", "checkpoint")
    assert "there is no checkpoint 9" in refused("audit", "check", "9")
    assert "workflow 'nothing' has no runs" in refused(
        "audit", "checkpoint", "--workflow", "nothing"
    )
    assert "neither a public key (ed25519:...) nor a readable file" in refused(
        "audit", "check", "--key", made["key_id"], code=2
    )
    assert "not both" in refused("audit", "check", "1", "--all", code=2)

    (keel.cwd / "folder.pem").mkdir()
    configure(keel, "folder.pem")
    toml = str(keel.cwd / "keel.toml")
    for args in (("audit", "checkpoint"), ("approve", "0" * 32, "gate"), ("serve",)):
        said = refused(*args)
        assert "cannot read the signing key" in said
        assert toml in said
    (keel.cwd / "keel.toml").write_text('[audit]\ntrusted_keys = ["ed25519:AAAA"]\n')
    assert "audit.trusted_keys entry 1" in refused("audit", "check")


def test_keel_serve_signs_approvals_and_checkpoints_with_its_configured_key(keel: Keel) -> None:
    made = keygen(keel, "server.pem")
    configure(keel, "server.pem")
    keel.ok("deploy", wait_flow("gate_then_signal"))
    run_id = keel.ok("start", "gate_then_signal").stdout.strip()
    tokens = {role: keel.ok("token", "create", f"{role}-1", "--role", role).stdout.strip()
              for role in ("operator", "approver")}  # fmt: skip
    port = free_port()
    log = keel.cwd / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "keel", "serve", "--port", str(port)],
                                  cwd=keel.cwd, env=keel.env, stdout=out, stderr=out,
                                  stdin=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def client(role: str) -> httpx2.Client:
        return httpx2.Client(base_url=base, trust_env=False, timeout=30.0,
                             headers={"Authorization": f"Bearer {tokens[role]}"})  # fmt: skip

    try:
        until("keel serve answers /ready", lambda: answering(base) or None)
        with client("approver") as approver:
            decided = approver.post(f"/runs/{run_id}/approvals/gate/approve", json={})
        assert decided.status_code == 200, decided.text
        with client("operator") as operator:
            signed = operator.post("/audit/checkpoints")
        assert signed.status_code == 201, signed.text
    finally:
        stop_workers([server])
    assert f"audit: signs approvals and checkpoints with key {made['key_id']}" in log.read_text()
    (decision,) = find(keel.history(run_id), "approval_decided", "gate")
    assert (decision["by"], decision["signature"]["key_id"]) == ("approver-1", made["key_id"])
    assert signed.json()["by"] == "operator-1"
    checked = keel("audit", "check", str(signed.json()["id"]))
    assert checked.returncode == 0, checked.stderr
    assert "signed approvals verify: 1" in checked.stdout
