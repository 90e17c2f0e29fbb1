"""What ``keel runs`` and ``keel show`` say of late runs: a marker in the list (whole at
80 columns), ``--late`` to list only them, the ``late`` flag and the expected duration
in their JSON, and in ``keel show`` how late: against the expected duration, how long the
run has been going, or that it finished late."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from keel.cli.app import app
from keel.cli.inspect_commands import _late_words
from keel.store.sqlite import SQLiteStore
from tests.unit.late_runs import EXPECTED, TOOK, LateRuns, make_late_runs


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "keel.db"


@pytest.fixture
def runs(db: Path) -> LateRuns:
    store = SQLiteStore(db)
    try:
        return make_late_runs(store)
    finally:
        store.close()


def keel(db: Path, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--db", f"sqlite:///{db}"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def listed(db: Path, *flags: str) -> dict[str, dict[str, Any]]:
    return {doc["id"]: doc for doc in json.loads(keel(db, "runs", "--json", *flags))}


def test_runs_json_says_which_runs_are_late_and_late_lists_only_those(
    db: Path, runs: LateRuns
) -> None:
    every = listed(db)
    assert {run_id: doc["late"] for run_id, doc in every.items()} == {
        runs.on_time: False, runs.running: True, runs.finished: True,
    }  # fmt: skip
    assert set(listed(db, "--late")) == {runs.running, runs.finished}
    assert set(listed(db, "--late", "--status", "running")) == {runs.running}


def test_runs_marks_late_runs_within_80_columns(db: Path, runs: LateRuns) -> None:
    text = keel(db, "runs")
    assert all(len(line) <= 80 for line in text.splitlines()), text
    rows = {line[:8]: line for line in text.splitlines()[1:]}
    assert "waiting for signal, late" in rows[runs.running[:8]]
    assert "succeeded, late" in rows[runs.finished[:8]]
    assert "late" not in rows[runs.on_time[:8]]


def test_show_says_how_late_a_run_is(db: Path, runs: LateRuns) -> None:
    running = keel(db, "show", runs.running).splitlines()
    (line,) = [line for line in running if line.split()[:1] == ["late"]]
    assert line.split()[1:4] == ["expected", "10m,", "running"]  # for as long as it runs
    finished = keel(db, "show", runs.finished).splitlines()
    assert finished[2].split() == ["late", "finished", "late:", "expected", "10m,", "took", "14m"]
    assert not [line for line in keel(db, "show", runs.on_time).splitlines()
                if line.split()[:1] == ["late"]]  # fmt: skip


def test_show_json_has_the_flag_the_expected_duration_and_the_time_taken(
    db: Path, runs: LateRuns
) -> None:
    finished = json.loads(keel(db, "show", runs.finished, "--json"))
    assert (finished["late"], finished["expected_duration"]) == (True, EXPECTED)
    assert finished["elapsed"] == finished["duration"] == TOOK
    on_time = json.loads(keel(db, "show", runs.on_time, "--json"))
    assert (on_time["late"], on_time["expected_duration"], on_time["elapsed"]) == (
        False, EXPECTED, 60.0)  # fmt: skip
    running = json.loads(keel(db, "show", runs.running, "--json"))
    assert running["late"]
    assert running["elapsed"] > EXPECTED


def test_late_words_count_from_the_expected_duration() -> None:
    going = {"status": "running", "expected_duration": 600.0, "elapsed": 845.0}
    assert _late_words(going) == "expected 10m, running 14m5s"
    paused = {**going, "status": "paused"}
    assert _late_words(paused) == "expected 10m, running 14m5s"
    ended = {"status": "failed", "expected_duration": 600.0, "elapsed": 3600.0}
    assert _late_words(ended) == "finished late: expected 10m, took 1h"


def test_verify_checks_the_late_flag_against_the_history(db: Path, runs: LateRuns) -> None:
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE runs SET late = 1 WHERE id = ?", (runs.on_time,))
    keel(db, "verify", runs.running, runs.finished)  # their flags are their histories'

    result = CliRunner().invoke(app, ["verify", runs.on_time, "--db", f"sqlite:///{db}"],
                                env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 1
    assert "the runs table says late true, the history says false" in result.output


def test_why_says_a_late_run_is_late(db: Path, runs: LateRuns) -> None:
    late = [line.split() for line in keel(db, "why", runs.running).splitlines()]
    assert ["late", "past", "its", "workflow's", "expected_duration"] in late
    on_time = keel(db, "why", runs.on_time)
    assert "expected_duration" not in on_time
    assert json.loads(keel(db, "why", runs.running, "--json"))["late"] is True
