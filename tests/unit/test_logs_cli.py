"""``keel logs RUN [NODE] [--attempt N] [--follow] [--json]`` on a SQLite file whose runs
a real worker executed: every attempt's lines under a line naming it, one attempt's,
JSON lines, 80 columns when piped, one-line errors; ``--follow`` (a real ``keel``
process) prints a running run's lines as they are written and ends with the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from keel.cli.app import app
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.store.sqlite import SQLiteStore
from tests.e2e import logflows

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60.0


def keel(db: Path, *args: str) -> Result:
    env = {"COLUMNS": "80", "KEEL_DATABASE_URL": None, "KEEL_SERVER_URL": None}
    return CliRunner().invoke(app, [*args, "--db", f"sqlite:///{db}"], env=env)


def executed(store: SQLiteStore, workflow: Any, **inputs: Any) -> str:
    worker = Worker(store, WorkerOptions(concurrency=2))
    try:
        run_id = worker.start_run(workflow.spec, inputs)
        worker.run_until_finished([run_id])
    finally:
        worker.close()
    return run_id


@pytest.fixture
def db(store: SQLiteStore) -> Path:
    return store.path


def test_logs_shows_each_attempts_lines_under_the_attempt(store: SQLiteStore, db: Path) -> None:
    run_id = executed(store, logflows.retried, word="hi")

    shown = keel(db, "logs", run_id[:8])

    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("chatty · attempt 1 · ")
    assert [line.split(maxsplit=2)[1:] for line in lines[1:4]] == [
        ["INFO", f"hi {n} of attempt 1"] for n in (1, 2, 3)
    ]  # fmt: skip
    assert lines[4].startswith("chatty · attempt 2 · ")
    assert [line.split(maxsplit=2)[2] for line in lines[5:]] == [
        f"hi {n} of attempt 2" for n in (1, 2, 3)
    ]  # fmt: skip


def test_one_attempt_of_one_node(store: SQLiteStore, db: Path) -> None:
    run_id = executed(store, logflows.retried, word="hi")

    shown = keel(db, "logs", run_id, "chatty", "--attempt", "2")

    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout.count("· attempt") == 1
    assert "attempt 2" in shown.stdout.splitlines()[0]
    assert "of attempt 1" not in shown.stdout
    assert shown.stdout.count("of attempt 2") == 3


def test_json_is_one_object_per_line(store: SQLiteStore, db: Path) -> None:
    run_id = executed(store, logflows.retried, word="hi")

    shown = keel(db, "logs", run_id, "--json")

    assert shown.exit_code == 0, shown.stderr
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [(line["seq"], line["attempt"], line["message"]) for line in lines] == [
        (seq, 1 + (seq - 1) // 3, f"hi {1 + (seq - 1) % 3} of attempt {1 + (seq - 1) // 3}")
        for seq in range(1, 7)
    ]
    assert set(lines[0]) == {"seq", "node", "item", "attempt", "at", "level", "message"}


def test_long_lines_and_tracebacks_fit_80_columns(store: SQLiteStore, db: Path) -> None:
    run_id = executed(store, logflows.isolated, word="w" * 150)

    shown = keel(db, "logs", run_id)

    assert shown.exit_code == 0, shown.stderr
    assert all(len(line) <= 80 for line in shown.stdout.splitlines())
    assert "Traceback (most recent call last):" in shown.stdout
    assert "".join(shown.stdout.split()).count("w" * 150) == 2  # wrapped, all there


def test_more_than_a_page_of_lines_is_shown_whole(store: SQLiteStore, db: Path) -> None:
    run_id = executed(store, logflows.mapped, values=list(range(1200)))

    shown = keel(db, "logs", run_id, "--json")

    assert shown.exit_code == 0, shown.stderr
    seqs = [json.loads(line)["seq"] for line in shown.stdout.splitlines()]
    assert seqs == list(range(1, 1201))


def test_a_run_whose_tasks_logged_nothing_says_so(store: SQLiteStore, db: Path) -> None:
    run_id = executed(store, logflows.quiet_chain, n=1)

    shown = keel(db, "logs", run_id)

    assert shown.exit_code == 0
    assert shown.stdout == ""
    assert shown.stderr == f"run {run_id[:8]}: its tasks logged nothing (through ctx.logger)\n"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["nope"], "no run with id 'nope' (see `keel runs`)"),
        (["{run}", "missing"], "run {short} has no node 'missing' (nodes: chatty)"),
        (
            ["{run}", "chatty", "--attempt", "9"],
            "run {short}: node chatty has no attempt 9 (it has 2)",
        ),
        (["{run}", "--attempt", "3"], "run {short}: no node has an attempt 3 (the most is 2)"),
    ],
)
def test_bad_input_is_one_line(store: SQLiteStore, db: Path, args: list[str], said: str) -> None:
    run_id = executed(store, logflows.retried, word="hi")

    shown = keel(db, "logs", *[arg.format(run=run_id) for arg in args])

    assert shown.exit_code == 1
    assert shown.stderr == said.format(short=run_id[:8]) + "\n"


def test_follow_prints_lines_as_they_come_and_ends_with_the_run(
    store: SQLiteStore, db: Path
) -> None:
    logflows.release.clear()
    worker = Worker(store, WorkerOptions(concurrency=2))
    run_id = worker.start_run(logflows.holding.spec, {})
    thread = threading.Thread(target=worker.run_until_finished, args=([run_id],))
    thread.start()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    env.pop("KEEL_SERVER_URL", None)
    follower = subprocess.Popen(
        [sys.executable, "-m", "keel", "logs", run_id, "--follow", "--db", f"sqlite:///{db}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        heading = follower.stdout.readline()
        first = follower.stdout.readline()
        assert heading.startswith("held · attempt 1")
        assert first.rstrip("\n").split(maxsplit=2)[1:] == ["INFO", "started"]
        assert follower.poll() is None  # the run goes on: so does --follow
        logflows.release.set()
        rest, errors = follower.communicate(timeout=DEADLINE)
    finally:
        logflows.release.set()
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
        thread.join(DEADLINE)
        worker.close()
    assert follower.returncode == 0, errors
    assert [line.split(maxsplit=2)[1:] for line in rest.splitlines()] == [["INFO", "released"]]
    assert store.get_run(run_id).status == "succeeded"


def test_follow_on_an_ended_run_prints_its_lines_and_returns(store: SQLiteStore, db: Path) -> None:
    """It returns (a hang would meet the test's timeout)."""
    run_id = executed(store, logflows.retried, word="hi")

    shown = keel(db, "logs", run_id, "--follow", "--json")

    assert shown.exit_code == 0, shown.stderr
    assert len(shown.stdout.splitlines()) == 6


def test_follow_ends_with_how_the_run_ended_on_stderr(store: SQLiteStore, db: Path) -> None:
    """The lines go to stdout alone, so piping them stays clean."""
    run_id = executed(store, logflows.retried, word="hi")

    shown = keel(db, "logs", run_id, "--follow")
    once = keel(db, "logs", run_id)

    assert shown.exit_code == 0, shown.stderr
    assert shown.stderr == f"run {run_id[:8]} succeeded\n"
    assert shown.stdout == once.stdout
    assert once.stderr == ""  # without --follow: nothing more to say
