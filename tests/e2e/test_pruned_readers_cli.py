"""What reads a run's history, on a pruned run (real ``python -m keel`` processes, a
SQLite file): ``keel diff``, ``keel fork`` and ``keel replay`` refuse it with what is
left of it (when, by whom, how many events were removed) instead of reading the empty
history as a run not started; ``keel runs`` does not count events that are gone."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from tests.e2e import test_run_cli
from tests.e2e.test_fork_cli import EXAMPLE, failed_trip, without_terminal
from tests.e2e.test_run_cli import Keel


@pytest.fixture
def keel(tmp_path: Path) -> Keel:
    return test_run_cli.keel.__wrapped__(tmp_path)  # type: ignore[attr-defined, no-any-return]


def pruned_trips(keel: Keel) -> tuple[str, str]:
    """Two failed trips, pruned (unsigned) by ``ops``."""
    first, second = failed_trip(keel), failed_trip(keel)
    with closing(sqlite3.connect(keel.db)) as conn, conn:  # ended long enough ago
        conn.execute("UPDATE runs SET ended_at = ended_at - 100")
    keel.ok("prune", "--older-than", "1m", "--yes", "--unsigned", "--by", "ops")
    assert {r["id"]: r["pruned_at"] is not None for r in keel.runs()} == {
        first: True, second: True}  # fmt: skip
    return first, second


def said(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join(result.stderr.split())


def test_diff_and_fork_of_a_pruned_run_are_refused_naming_it(keel: Keel) -> None:
    first, second = pruned_trips(keel)

    for args in (["diff", first[:8], second[:8]], ["diff", first, second, "--json"]):
        refused = keel(*args)
        assert refused.returncode == 1, refused.stdout
        assert refused.stdout == ""
        assert f"run {first} was pruned on " in said(refused)
        assert "no differences" not in refused.stdout + refused.stderr
    fresh = keel.run(EXAMPLE, "-i", "traveller=Ada", "-i", "city=Lisbon").run_id
    refused = keel("diff", fresh[:8], second[:8])
    assert f"run {second} was pruned on " in said(refused), refused.stderr

    for extra in ([], ["--set", 'nodes.book_hotel.output={"kind": 1}']):
        forked = without_terminal(keel, "fork", first[:8], "--from", "book_car",
                                  "--dry-run", *extra)  # fmt: skip
        assert forked.returncode == 1, forked.stdout
        assert f"run {first} was pruned on " in said(forked)
        assert "keel cancel" not in forked.stderr
        assert "pending" not in forked.stderr


def test_replay_of_a_pruned_run_says_when_it_was_pruned(keel: Keel) -> None:
    first, _ = pruned_trips(keel)

    told = keel("replay", first[:8])
    assert told.returncode == 1
    text = said(told)
    assert "nothing is left to replay" in text
    assert "the history is empty" not in text
    assert "pruned on " in text
    assert " by ops: " in text
    events = keel.show(first)["pruned"]["counts"]["events"]
    assert events > 0
    assert f"{events} events removed" in text
    assert "Traceback" not in told.stderr

    as_json = keel("replay", first, "--json")
    assert as_json.returncode == 1
    doc = json.loads(as_json.stdout)
    assert doc["run_id"] == first
    assert (doc["pruned"]["by"], doc["pruned"]["counts"]["events"]) == ("ops", events)

    checked = keel("replay", first, "--code", EXAMPLE, "--json")
    assert checked.returncode == 1
    assert json.loads(checked.stdout)["pruned"]["by"] == "ops"


def test_runs_does_not_count_the_events_of_a_pruned_run(keel: Keel) -> None:
    first, _ = pruned_trips(keel)
    keel.env["COLUMNS"] = "120"
    listed = keel.ok("runs").stdout
    (line,) = [line for line in listed.splitlines() if line.startswith(first[:8])]
    before = keel.show(first)["pruned"]["last_seq"]
    assert before > 0
    assert str(before) not in line.split(), line  # no count of events that are gone
    assert line.count("pruned") == 2, line  # its status, and its events column
