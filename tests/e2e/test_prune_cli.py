"""``keel prune`` as an operator runs it, in real ``python -m keel`` processes on a SQLite
file: what it refuses, what a dry run says, what pruning leaves, what ``keel show``,
``history`` and ``verify`` then say, and an edited tombstone caught by ``keel verify``.

Runs are made old by moving their end back 100 days in the database (the one thing a
test cannot wait for)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from keel.audit.signing import SigningKey
from tests.e2e import test_run_cli
from tests.e2e.test_run_cli import Keel

CHAIN = str(Path(__file__).resolve().with_name("flows") / "yaml_chain.yaml")
DAYS_100 = 100 * 86_400


@pytest.fixture
def keel(tmp_path: Path) -> Keel:
    return test_run_cli.keel.__wrapped__(tmp_path)  # type: ignore[attr-defined, no-any-return]


def _sql(keel: Keel, sql: str, *params: object) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(keel.db)) as conn, conn:
        return conn.execute(sql, params).fetchall()


def _runs(keel: Keel) -> tuple[list[str], str]:
    """Two runs that ended 100 days ago, and one that just ended."""
    old = []
    for text in ("1", "2"):
        keel.ok("run", CHAIN, "-i", f"text={text}", "-q")
        old.append(keel.newest_run_id())
    _sql(keel, "UPDATE runs SET ended_at = ended_at - ?", DAYS_100)
    keel.ok("run", CHAIN, "-i", "text=3", "-q")
    return old, keel.newest_run_id()


def _events(keel: Keel) -> dict[str, int]:
    rows = _sql(keel, "SELECT run_id, count(*) FROM events GROUP BY run_id")
    return {str(run_id): int(count) for run_id, count in rows}  # type: ignore[call-overload]


def test_bad_durations_and_a_missing_key_are_refused_before_anything_is_removed(
    keel: Keel,
) -> None:
    _runs(keel)
    before = _events(keel)
    for bad in ("banana", "-5d", ""):
        refused = keel("prune", "--older-than", bad, "--yes")
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith(f"--older-than {bad!r}")
        assert "Traceback" not in refused.stderr
    no_key = keel("prune", "--older-than", "90d", "--yes")
    assert no_key.returncode == 1
    assert "KEEL_AUDIT_KEY_FILE" in no_key.stderr
    assert "--unsigned" in no_key.stderr
    keel.env["KEEL_AUDIT_KEY_FILE"] = str(keel.cwd / "missing.pem")
    unreadable = keel("prune", "--older-than", "90d", "--yes")
    assert unreadable.returncode == 1
    assert "missing.pem" in unreadable.stderr
    assert "Traceback" not in unreadable.stderr
    assert _events(keel) == before


def test_a_dry_run_and_an_unanswered_question_remove_nothing(keel: Keel) -> None:
    old, _young = _runs(keel)
    keel.env["KEEL_AUDIT_KEY_FILE"] = str(keel.cwd / "audit.pem")
    SigningKey.generate().save(keel.cwd / "audit.pem")
    before = _events(keel)

    dry = keel.ok("prune", "--older-than", "90d", "--dry-run")
    assert dry.stdout.startswith("would prune 2 runs that ended before ")
    assert "\n  16 events, 0 log lines, 0 model calls, " in dry.stdout
    assert max(len(line) for line in dry.stdout.splitlines()) <= 80
    dry_json = json.loads(keel.ok("prune", "--older-than", "90d", "--dry-run", "--json").stdout)
    assert (dry_json["dry_run"], dry_json["runs"], dry_json["events"]) == (True, 2, 16)
    assert sorted(dry_json["pruned"]) == sorted(old)
    asked = keel("prune", "--older-than", "90d")  # no terminal to ask: refused
    assert asked.returncode == 1
    assert "would prune 2 runs" in asked.stderr
    assert "nothing was removed (pass --yes" in asked.stderr
    assert _events(keel) == before
    assert _sql(keel, "SELECT count(*) FROM tombstones") == [(0,)]


def test_a_prune_leaves_signed_tombstones_that_show_history_and_verify_tell(
    keel: Keel,
) -> None:
    old, young = _runs(keel)
    key = SigningKey.generate()
    key.save(keel.cwd / "audit.pem")
    keel.env["KEEL_AUDIT_KEY_FILE"] = str(keel.cwd / "audit.pem")
    young_history = keel.history(young)

    done = json.loads(keel.ok("prune", "--older-than", "90d", "--yes", "--json").stdout)

    assert (done["dry_run"], done["runs"], done["events"], done["signed_by"]) == (
        False, 2, 16, key.key_id)  # fmt: skip
    assert sorted(done["pruned"]) == sorted(old)
    assert set(_events(keel)) == {young}
    assert keel.history(young) == young_history
    head = str(_sql(keel, "SELECT head_hash FROM runs WHERE id = ?", old[0])[0][0])
    said = f"8 events removed; head {head} (signed by key {key.key_id})"
    shown = keel.ok("show", old[0])
    assert "pruned on " in shown.stdout
    assert said.split(";")[0] in shown.stdout
    assert key.key_id in shown.stdout
    assert "succeeded" in shown.stdout
    detail = keel.show(old[0])
    assert (detail["input"], detail["output"], detail["nodes"]) == (None, None, [])
    assert detail["pruned"]["signature"] == "valid"
    history = keel.ok("history", old[0])
    assert said in history.stdout.replace("\n", " ")
    assert keel.ok("history", old[0], "--json").stdout == ""
    verified = keel.ok("verify", "--all")
    assert verified.stdout.count("✓ run") == 3
    assert verified.stdout.count("pruned on") == 2
    listed = keel.ok("runs").stdout
    assert len([line for line in listed.splitlines() if ", pruned" in line]) == 2
    # pruned once: nothing is left to prune
    again = keel.ok("prune", "--older-than", "90d", "--yes")
    assert again.stdout.startswith("pruned 0 runs")
    # a pruned run can no longer be acted on
    retried = keel("retry", old[0])
    assert retried.returncode == 1
    assert f"run {old[0]} was pruned on " in retried.stderr


def test_an_edited_tombstone_fails_verify_naming_the_run(keel: Keel) -> None:
    old, _ = _runs(keel)
    SigningKey.generate().save(keel.cwd / "audit.pem")
    keel.env["KEEL_AUDIT_KEY_FILE"] = str(keel.cwd / "audit.pem")
    keel.ok("prune", "--older-than", "90d", "--yes")
    (data,) = _sql(keel, "SELECT data FROM tombstones WHERE run_id = ?", old[0])[0]
    edited = {**json.loads(str(data)), "head_hash": "f" * 64}
    _sql(keel, "UPDATE tombstones SET data = ? WHERE run_id = ?", json.dumps(edited), old[0])

    checked = keel("verify", "--all")

    assert checked.returncode == 1
    assert f"✗ run {old[0]}: its tombstone does not match" in checked.stderr
    assert "the signature by key" in checked.stderr
    assert f"✓ run {old[1]}" in checked.stdout
    alone = keel("verify", old[0][:8])
    assert alone.returncode == 1


def test_an_unsigned_prune_verifies_and_says_it_is_unsigned(keel: Keel) -> None:
    old, _ = _runs(keel)
    pruned = keel.ok("prune", "--older-than", "90d", "--yes", "--unsigned")
    assert "tombstones unsigned (--unsigned)" in pruned.stdout
    verified = keel.ok("verify", old[0])
    assert "(unsigned)" in verified.stdout.replace("\n", " ")


def test_a_prune_removes_the_blobs_only_pruned_runs_named(keel: Keel) -> None:
    """Two old runs and a young one take a large input (past the 64 KiB blob threshold);
    the young one's is the first old one's: a prune removes the second's blobs only."""
    for name, digit in (("one.json", "1"), ("two.json", "2")):
        (keel.cwd / name).write_text(json.dumps({"text": digit + " " * 70_000}))
    for name in ("one.json", "two.json"):
        keel.ok("run", CHAIN, "--input", f"@{name}", "-q")
    _sql(keel, "UPDATE runs SET ended_at = ended_at - ?", DAYS_100)
    keel.ok("run", CHAIN, "--input", "@one.json", "-q")
    young = keel.newest_run_id()
    # each run names two: its input, and parse's argument text
    assert _sql(keel, "SELECT count(*) FROM blobs") == [(4,)]

    dry = keel.ok("prune", "--older-than", "90d", "--dry-run")
    assert "\n  2 blobs (large values) no kept run names, 140.0 KB\n" in dry.stdout + "\n"
    assert max(len(line) for line in dry.stdout.splitlines()) <= 80
    assert _sql(keel, "SELECT count(*) FROM blobs") == [(4,)]
    done = keel.ok("prune", "--older-than", "90d", "--yes", "--unsigned")
    assert "\n  2 blobs (large values) no kept run names, 140.0 KB removed\n" in done.stdout

    assert _sql(keel, "SELECT count(*) FROM blobs") == [(2,)]
    assert keel.show(young)["input"] == {"text": "1" + " " * 70_000}
    assert keel.ok("verify", "--all").stdout.count("✓ run") == 3
    again = json.loads(
        keel.ok("prune", "--older-than", "90d", "--yes", "--unsigned", "--json").stdout
    )
    assert (again["runs"], again["blobs"], again["blob_bytes"]) == (0, 0, 0)
