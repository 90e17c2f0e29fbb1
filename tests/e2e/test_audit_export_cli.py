"""``keel audit export`` and ``keel audit verify`` in real ``python -m keel`` processes,
on runs that ``keel run`` recorded: the export verifies with no database; the tamper
test (a run's output edited in the database and its whole chain recomputed: ``keel
verify`` passes, as it must, and the export fails against a checkpoint signed before,
naming the run); and bad input refused in one line with exit status 2."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from keel.audit.records import sign_checkpoint
from keel.audit.signing import SigningKey
from keel.store.sqlite import SQLiteStore
from tests.audit.exports import heads, rewrite_output, with_checkpoint
from tests.e2e import test_run_cli
from tests.e2e.test_run_cli import Keel, flow


@pytest.fixture
def keel(tmp_path: Path) -> Keel:
    return test_run_cli.keel.__wrapped__(tmp_path)  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def two_runs(keel: Keel) -> list[str]:
    ids = []
    for text in ("5", "7"):
        ran = keel.run(flow("sequential"), "-i", f"text={text}")
        assert ran.proc.returncode == 0, ran.proc.stderr
        ids.append(ran.run_id)
    return ids


def refused(result: subprocess.CompletedProcess[str], said: str) -> None:
    """Exit 2, one message on stderr (wrapped at 80 columns) saying ``said``, no
    traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert said in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert all(len(line) <= 80 for line in result.stderr.splitlines()), result.stderr


def items(text: str) -> list[str]:
    """A report's lines with their wrapped continuations (indented lines) joined on."""
    found: list[str] = []
    for line in text.splitlines():
        if line.startswith(" ") and found:
            found[-1] += " " + line.strip()
        else:
            found.append(line)
    return found


def test_an_export_verifies_with_no_database(keel: Keel, two_runs: list[str]) -> None:
    exported = keel.ok("audit", "export", "-o", "audit.jsonl")
    assert "exported 2 runs, " in exported.stderr
    keel.db.unlink()  # offline: nothing but the file
    checked = keel("audit", "verify", "audit.jsonl")
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.startswith("✓ intact: 2 runs, ")
    report = json.loads(keel.ok("audit", "verify", "audit.jsonl", "--json").stdout)
    assert (report["intact"], report["counts"]["runs"]) == (True, 2)

    data = (keel.cwd / "audit.jsonl").read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    (keel.cwd / "flipped.jsonl").write_bytes(bytes(flipped))
    broken = keel("audit", "verify", "flipped.jsonl")
    assert broken.returncode == 1
    assert broken.stdout.startswith("✗ line ")
    assert "✗ 1 problem" in broken.stdout or "problems in" in broken.stdout


def test_a_run_rewritten_in_the_database_fails_against_a_checkpoint(
    keel: Keel, two_runs: list[str]
) -> None:
    key = SigningKey.generate()
    (keel.cwd / "audit.pub").write_text(key.public_key.to_text() + "\n")
    store = SQLiteStore(keel.db)
    checkpoint = sign_checkpoint(key, 1_900_000_000.0, "auditor", heads(store, two_runs))
    store.close()
    forged = two_runs[0]
    rewrite_output(keel.db, forged, "add_ten", 999)

    assert keel("verify", forged).returncode == 0  # the database's own check passes
    keel.ok("audit", "export", "-o", "audit.jsonl")
    assert keel("audit", "verify", "audit.jsonl").returncode == 0  # so does the export alone

    signed = with_checkpoint((keel.cwd / "audit.jsonl").read_bytes(), checkpoint)
    (keel.cwd / "checked.jsonl").write_bytes(signed)
    checked = keel("audit", "verify", "checked.jsonl", "--key", "audit.pub")
    assert checked.returncode == 1, checked.stdout
    problems = [line for line in items(checked.stdout) if line.startswith("✗ line")]
    assert len(problems) == 1, checked.stdout
    assert f"run {forged}" in problems[0]
    assert "rewritten after the checkpoint" in problems[0]
    assert two_runs[1] not in checked.stdout


def test_a_csv_export_is_for_spreadsheets_and_says_so_to_verify(
    keel: Keel, two_runs: list[str]
) -> None:
    keel.ok("audit", "export", two_runs[1][:8], "--format", "csv", "-o", "audit.csv")
    rows = (keel.cwd / "audit.csv").read_text().splitlines()
    assert rows[0].startswith("run_id,workflow,seq,at,")
    assert all(row.startswith(two_runs[1]) for row in rows[1:])
    refused(keel("audit", "verify", "audit.csv"), "CSV export")


def test_since_and_until_take_dates_and_durations(keel: Keel, two_runs: list[str]) -> None:
    recent = keel.ok("audit", "export", "--since", "7d", "--until", "2999-01-01").stdout
    assert recent.count('{"type":"run"') == 2
    future = keel.ok("audit", "export", "--since", "2999-01-01T00:00Z", "-o", "none.jsonl")
    assert "exported 0 runs, 0 events" in future.stderr
    assert keel.ok("audit", "verify", "none.jsonl").stdout.startswith("✓ intact")
    refused(keel("audit", "export", "--since", "last week"), "--since 'last week'")


def test_bad_input_is_one_line_and_exit_2(keel: Keel, two_runs: list[str]) -> None:
    keel.ok("audit", "export", "-o", "audit.jsonl")
    refused(keel("audit", "verify", "missing.jsonl"), "cannot read missing.jsonl")
    (keel.cwd / "notes.txt").write_text("hello\n")
    refused(keel("audit", "verify", "notes.txt"), "not a keel audit export")
    refused(keel("audit", "verify", "audit.jsonl", "--key", "ed25519:not-base64!"),
            "--key ed25519:not-base64!: a public key is not valid base64")  # fmt: skip
    refused(keel("audit", "verify", "audit.jsonl", "--key", "nowhere.pub"),
            "--key nowhere.pub: neither a public key")  # fmt: skip
    SigningKey.generate().save(keel.cwd / "private.pem")
    refused(keel("audit", "verify", "audit.jsonl", "--key", "private.pem"), "a private key")
    missing = keel("audit", "export", "nosuchrun")
    assert missing.returncode == 1
    assert "no run with id 'nosuchrun'" in missing.stderr
