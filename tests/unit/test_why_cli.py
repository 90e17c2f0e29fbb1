"""``keel why RUN`` and the stuck lines of ``keel show``, against a SQLite file: what
holds each node, in words that fit 80 columns (as when piped), and in full with
``--json``; a bad run id is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from keel.cli.app import app
from keel.runtime.operations.control import cancel_run, start_run
from keel.runtime.operations.interventions import pause_run
from keel.spec import parse_spec
from keel.store.sqlite import SQLiteStore

TWO = {"name": "two", "nodes": [
    {"id": "a", "task": "m:f"},
    {"id": "review_with_a_long_name", "kind": "approval", "title": "Check the amount",
     "assignees": ["finance"]},
    {"id": "b", "task": "m:f", "after": ["a", "review_with_a_long_name"]}]}  # fmt: skip
FAN = {"name": "fan", "nodes": [{"id": "fan", "kind": "map", "task": "m:g",
                                 "items": "input.items", "item_arg": "i"}]}  # fmt: skip


def keel(db: Path, *args: str) -> Result:
    env = {"COLUMNS": "80", "KEEL_SERVER_URL": None, "KEEL_DATABASE_URL": None}
    return CliRunner().invoke(app, [*args, "--db", f"sqlite:///{db}"], env=env)


def ok(db: Path, *args: str) -> str:
    result = keel(db, *args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert max(len(line) for line in result.stdout.splitlines()) <= 80, result.stdout
    return result.stdout


def started(tmp_path: Path, spec: dict[str, Any], run_input: Any = None) -> tuple[Path, str]:
    """A SQLite file holding one run of ``spec``, which no worker takes."""
    db = tmp_path / "keel.db"
    store = SQLiteStore(db)
    try:
        return db, start_run(store, parse_spec(spec), run_input or {}).id
    finally:
        store.close()


def flat(text: str) -> str:
    return " ".join(text.split())


def test_why_says_what_holds_each_node(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, TWO)

    said = ok(db, "why", run_id[:8])

    lines = said.splitlines()
    assert lines[0] == f"two · run {run_id} · running"
    assert lines[1].split() == ["node", "status", "why"]
    text = flat(said)
    assert "a scheduled queued on 'default' for" in text
    assert "no live worker takes it (none was ever seen)" in text
    assert "review_with_a_long_name awaiting approval 'Check the amount' by finance" in text
    assert "b waiting waits for a, review_with_a_long_name" in text


def test_why_json_gives_each_reason_with_its_data(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, TWO)

    found = json.loads(ok(db, "why", run_id, "--json"))

    assert (found["run_id"], found["status"], found["paused"]) == (run_id, "running", None)
    a, review, b = found["nodes"]
    assert (a["node"], a["reason"]["kind"], a["reason"]["queue"], a["stuck"]) == (
        "a", "no_worker", "default", True)  # fmt: skip
    assert review["reason"] == {"kind": "approval", "title": "Check the amount",
                                "assignees": ["finance"], "role": None,
                                "since": review["reason"]["since"], "due": None}  # fmt: skip
    assert (b["reason"], b["stuck"]) == (
        {"kind": "parents", "parents": ["a", "review_with_a_long_name"]}, False)  # fmt: skip


def test_a_maps_items_held_alike_are_one_line(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, FAN, {"items": [1, 2, 3]})

    said = flat(ok(db, "why", run_id))

    assert "fan (3 items) scheduled queued on 'default' for" in said
    assert len(json.loads(ok(db, "why", run_id, "--json"))["nodes"]) == 3


def test_a_paused_run_says_so_once_and_its_nodes_point_at_it(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, TWO)
    store = SQLiteStore(db)
    pause_run(store, run_id, reason="books closed", by="ops")
    store.close()

    said = flat(ok(db, "why", run_id))

    assert f"two · run {run_id} · paused paused run paused by ops since" in said
    assert said.count("books closed") == 1
    assert "a scheduled the run is paused; also queued on 'default'" in said


def test_show_prints_a_line_per_stuck_node(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, TWO)

    lines = ok(db, "show", run_id).splitlines()

    stuck = [line for line in lines if line.startswith("  stuck")]
    assert len(stuck) == 1, lines  # the approval is said as "waits for", b by the table
    assert stuck[0].split()[:5] == ["stuck", "a:", "queued", "on", "'default'"]
    assert "no live worker takes it" in flat("\n".join(lines))


def test_an_ended_run_has_nothing_holding_it(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, TWO)
    store = SQLiteStore(db)
    cancel_run(store, run_id, reason="not needed", by="ops")
    store.close()

    said = ok(db, "why", run_id)

    assert flat(said) == f"two · run {run_id} · cancelled it has ended: nothing holds it"
    assert "stuck" not in ok(db, "show", run_id)


def test_an_unknown_run_is_a_one_line_error(tmp_path: Path) -> None:
    db, _ = started(tmp_path, TWO)

    result = keel(db, "why", "ffffffff")

    assert result.exit_code == 1
    assert result.stderr == "no run with id 'ffffffff' (see `keel runs`)\n"
    assert result.stdout == ""
