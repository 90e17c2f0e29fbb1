"""``keel show`` ends a run that called models with its ledger, ``keel calls`` lists each
call and ``keel spend`` what workflows spent per model: against a SQLite file seeded
through the store's API (``ledgerflows``), at 80 columns as when piped, and whole with
``--json``. Possibly billed calls, calls in flight and estimated usage are said in
words; a node the run does not have is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from keel.cli.app import app
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import cancel_run
from keel.store.sqlite import SQLiteStore
from tests.llm.ledgerflows import MODEL, T0, Seeded, seed


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, Seeded]:
    db = tmp_path / "keel.db"
    store = SQLiteStore(db)
    try:
        return db, seed(store)
    finally:
        store.close()


def keel(db: Path, *args: str, columns: int = 80) -> Result:
    env = {"COLUMNS": str(columns), "KEEL_SERVER_URL": None, "KEEL_DATABASE_URL": None}
    return CliRunner().invoke(app, [*args, "--db", f"sqlite:///{db}"], env=env)


def ok(db: Path, *args: str, columns: int = 80) -> str:
    result = keel(db, *args, columns=columns)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert max(len(line) for line in result.stdout.splitlines()) <= columns, result.stdout
    return result.stdout


def flat(text: str) -> str:
    return " ".join(text.split())


def section(shown: str) -> list[str]:
    """``keel show``'s lines from the ledger's title on."""
    lines = shown.splitlines()
    return lines[lines.index("LLM calls, tokens and cost") :]


def test_show_ends_with_the_ledger_per_node_and_in_total(seeded: tuple[Path, Seeded]) -> None:
    db, runs = seeded
    shown = section(ok(db, "show", runs.run))

    assert shown[1].split() == ["node", "model", "calls", "input", "output", "cost"]
    assert shown[2].split() == ["classify", MODEL, "1", "120", "30", "$0.000042"]
    assert shown[3].split() == ["draft", MODEL, "7", "4,000", "850", "$0.0096"]
    # what the numbers do not say goes under the row, whole
    assert shown[4].strip() == "3 items, 1 failed, 1 possibly billed, 1 in flight, 1 estimated"
    assert shown[5].split() == ["total", "8", "4,120", "880", "$0.0096"]
    said = flat("\n".join(shown[6:]))
    assert said.startswith("! 1 possibly billed: the worker died after sending; charged its "
                           "reservation ($0.0030)")  # fmt: skip
    assert "! 1 call in flight: counted at its reservation ($0.0025) until it ends" in said
    assert ("! 1 call with estimated usage: the provider reported none, so the tokens and "
            "cost are keel's count") in said  # fmt: skip


def test_a_wide_console_puts_the_notes_beside_their_row(seeded: tuple[Path, Seeded]) -> None:
    db, runs = seeded
    shown = section(ok(db, "show", runs.run, columns=140))
    assert shown[1].split()[-1] == "notes"
    assert shown[3].split()[:6] == ["draft", MODEL, "7", "4,000", "850", "$0.0096"]
    assert shown[3].endswith("3 items, 1 failed, 1 possibly billed, 1 in flight, 1 estimated")
    assert shown[4].split()[0] == "total"


def test_a_run_with_one_node_of_calls_has_no_total_line(seeded: tuple[Path, Seeded]) -> None:
    db, runs = seeded
    shown = section(ok(db, "show", runs.other))
    assert shown[2].split() == ["plan", "smollm2", "2", "300", "40", "$0.00000070"]
    assert shown[3].strip() == "1 tool call"
    assert len(shown) == 4  # no total, nothing to warn of


def test_a_run_without_calls_shows_no_ledger(seeded: tuple[Path, Seeded]) -> None:
    db, runs = seeded
    shown = ok(db, "show", runs.empty)
    assert "LLM" not in shown
    assert "cost" not in shown
    assert json.loads(keel(db, "show", runs.empty, "--json").stdout)["llm"] is None


def test_show_json_has_the_ledger_with_money_exact(seeded: tuple[Path, Seeded]) -> None:
    db, runs = seeded
    detail = json.loads(keel(db, "show", runs.run, "--json").stdout)
    ledger = detail["llm"]
    assert [n["node"] for n in ledger["nodes"]] == ["classify", "draft"]
    assert ledger["total"]["cost_nanos"] == 9_642_000
    assert ledger["total"]["cost"] == "0.009642000"
    assert ledger["total"]["possibly_billed"] == 1
    assert ledger["nodes"][1]["items"] == 3


def test_calls_lists_each_call_in_the_order_made(seeded: tuple[Path, Seeded]) -> None:
    db, runs = seeded
    listed = ok(db, "calls", runs.run).splitlines()

    assert listed[0].split() == ["node", "#", "att", "model", "state", "in", "out", "cost",
                                 "latency"]  # fmt: skip
    rows = [line.split() for line in listed[1:] if not line.startswith(" ")]
    assert [row[:3] for row in rows[:8]] == [
        ["classify", "0", "1"], ["draft[0]", "0", "1"], ["draft[0]", "1", "2"],
        ["draft[1]", "0", "1"], ["draft[1]", "1", "2"], ["draft[1]", "2", "3"],
        ["draft[2]", "0", "1"], ["draft[2]", "1", "2"],
    ]  # fmt: skip
    assert rows[2][4:8] == ["answered", "~1,000", "~250", "$0.0011"]  # estimated usage
    assert rows[4][4:] == ["failed", "0", "0", "$0", "0.10s"]
    assert rows[5][4:] == ["in", "flight", "0", "0", "$0.0025"]
    assert rows[7][4:] == ["possibly", "billed", "0", "0", "$0.0030"]
    text = "\n".join(listed)
    assert "    error: RateLimited: 429 Too Many Requests" in text
    assert "~ estimated: the provider reported no usage" in text
    assert "LLM calls, tokens and cost" in text  # the ledger follows


def test_calls_of_one_node_and_of_a_node_without_calls(seeded: tuple[Path, Seeded]) -> None:
    db, runs = seeded
    listed = ok(db, "calls", runs.run, "classify")
    assert len(listed.splitlines()) == 2
    assert "LLM calls" not in listed
    quiet = ok(db, "calls", runs.run, "route")
    assert quiet.strip() == f"node route of run {runs.run[:8]} made no model or tool calls"
    none = ok(db, "calls", runs.empty)
    assert none.strip() == f"run {runs.empty[:8]} made no model or tool calls"


def test_calls_of_a_node_the_run_does_not_have_is_a_one_line_error(
    seeded: tuple[Path, Seeded],
) -> None:
    db, runs = seeded
    result = keel(db, "calls", runs.run, "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"run {runs.run[:8]} has no node 'nope' (nodes: "
                                     "classify, draft, route)")  # fmt: skip
    assert "Traceback" not in result.output
    missing = keel(db, "calls", "zzzzzz")
    assert missing.exit_code == 1
    assert "keel runs" in missing.stderr


def test_calls_json_gives_each_call_whole(seeded: tuple[Path, Seeded]) -> None:
    db, runs = seeded
    found = json.loads(keel(db, "calls", runs.run, "--json").stdout)
    assert found["run_id"] == runs.run
    assert found["workflow"] == "tickets"
    first = found["calls"][0]
    assert first["request"] == {"messages": [{"role": "user", "content": "ask c1"}]}
    assert first["response"] == {"text": "answer c1"}
    assert (first["cost_nanos"], first["cost"], first["price_source"]) == (
        42_000, "0.000042000", "genai-prices 0.0.1")  # fmt: skip
    billed = next(c for c in found["calls"] if c["state"] == "possibly_billed")
    assert billed["cost_nanos"] == billed["reserved_nanos"] == 3_000_000
    flying = next(c for c in found["calls"] if c["state"] == "sent")
    assert (flying["cost_nanos"], flying["ended_at"]) == (2_500_000, None)
    assert found["ledger"]["total"]["calls"] == 8


def test_spend_per_workflow_and_model(seeded: tuple[Path, Seeded]) -> None:
    db, _ = seeded
    shown = ok(db, "spend").splitlines()
    assert shown[0].split() == ["workflow", "model", "calls", "input", "output", "cost"]
    assert [line.split()[:3] for line in shown[1:] if not line.startswith(" ")] == [
        ["agents", "lookup", "1"], ["agents", "smollm2", "1"], ["tickets", MODEL, "8"],
        ["total", "10", "4,420"]]  # fmt: skip
    assert shown[4].strip() == "1 possibly billed, 1 estimated"

    found = json.loads(keel(db, "spend", "--workflow", "agents", "--json").stdout)
    assert [row["model"] for row in found["spend"]] == ["lookup", "smollm2"]
    assert found["total"]["cost_nanos"] == 700

    later = ok(db, "spend", "--since", "2099-01-01")
    assert later.strip() == "no model or tool calls since 2099-01-01"
    since = json.loads(keel(db, "spend", "--since", "2023-11-14T00:00", "--json").stdout)
    assert since["since"] < T0
    assert since["total"]["calls"] == 10
    bad = keel(db, "spend", "--since", "yesterday")
    assert bad.exit_code == 2
    assert "neither a date" in bad.stderr


def test_a_call_in_flight_of_a_run_that_ended_is_said_never_ended(
    seeded: tuple[Path, Seeded],
) -> None:
    db, runs = seeded
    store = SQLiteStore(db)
    try:
        cancel_run(store, runs.run, by="tester", clock=FakeClock(T0 + 10))
    finally:
        store.close()
    said = flat("\n".join(section(ok(db, "show", runs.run))))
    assert ("! 1 call sent and never ended: the run ended first; counted at its reservation "
            "($0.0025)") in said  # fmt: skip
    assert "until it ends" not in said
