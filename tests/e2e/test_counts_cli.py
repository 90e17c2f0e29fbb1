"""What ``keel run``, ``keel show``, ``keel graph`` and ``keel verify`` count and how wide
they print, as a user runs them (one real ``python -m keel`` per call): a map counts its
retries, not its items' executions; a node set by hand is not a retry; compensations are
listed in the order they ran; and nothing is wider than the 80 columns of a pipe.

The workflows are in ``countflows.py`` and ``flows_e2e.py`` beside this file.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.e2e import test_run_cli
from tests.e2e.test_run_cli import ROOT, Keel, flow

COUNTS = f"{Path(__file__).resolve().with_name('countflows.py')}"
TRIP = str(ROOT / "examples" / "trip.py")
WIDTH = 80


@pytest.fixture
def keel(tmp_path: Path) -> Keel:
    """``keel`` piped, with ``COLUMNS=80`` as a terminal of 80 columns would set."""
    made: Keel = test_run_cli.keel.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    return dataclasses.replace(made, env={**made.env, "COLUMNS": str(WIDTH)})


def fits(text: str) -> list[str]:
    """The text's lines, once none is wider than ``WIDTH``."""
    lines = text.splitlines()
    wide = [line for line in lines if len(line) > WIDTH]
    assert not wide, "wider than 80 columns:\n" + "\n".join(wide)
    return lines


def line_of(lines: list[str], *words: str) -> str:
    (line,) = [line for line in lines if all(word in line for word in words)]
    return line


def node_of(shown: dict[str, object], node: str) -> dict[str, object]:
    nodes = shown["nodes"]
    assert isinstance(nodes, list)
    (found,) = [n for n in nodes if n["id"] == node]
    assert isinstance(found, dict)
    return found


# --- 1. a map counts retries, not its items' executions --------------------------------------


def test_a_map_whose_items_succeed_first_time_shows_no_attempts(keel: Keel, tmp_path: Path) -> None:
    ran = keel.run(f"{COUNTS}:stock", "-i", 'items=["a","b"]', "-i", f"folder={tmp_path}")

    assert ran.proc.returncode == 0, ran.proc.stderr
    summary = line_of(ran.proc.stderr.splitlines(), "check_stock")
    assert "2/2 items" in summary
    assert "attempt" not in summary
    assert "retr" not in summary
    node = node_of(keel.show(ran.run_id), "check_stock")
    assert (node["attempts"], node["retries"]) == (1, 0)
    shown = line_of(keel.ok("show", ran.run_id).stdout.splitlines(), "✓", "check_stock")
    assert shown.split()[1:4] == ["check_stock", "succeeded", "1"]


def test_a_map_with_one_item_retried_counts_one_retry(keel: Keel, tmp_path: Path) -> None:
    items = 'items=["a","flaky1","b"]'
    ran = keel.run(f"{COUNTS}:stock", "-i", items, "-i", f"folder={tmp_path}")

    assert ran.proc.returncode == 0, ran.proc.stderr
    summary = line_of(ran.proc.stderr.splitlines(), "check_stock")
    assert "3/3 items, 1 retry" in summary
    assert "attempts" not in summary
    node = node_of(keel.show(ran.run_id), "check_stock")
    # attempts: the highest attempt number of any item; retries: attempts after the first
    assert (node["attempts"], node["retries"]) == (2, 1)
    shown = line_of(keel.ok("show", ran.run_id).stdout.splitlines(), "✓", "check_stock")
    assert "2 (1 retry)" in shown


def test_keel_failed_counts_a_failed_maps_attempts_not_its_items(
    keel: Keel, tmp_path: Path
) -> None:
    items = 'items=["a","b","broken"]'
    ran = keel.run(f"{COUNTS}:stock", "-i", items, "-i", f"folder={tmp_path}")
    assert ran.proc.returncode == 1

    (listed,) = json.loads(keel.ok("failed", "--json").stdout)

    assert (listed["node"], listed["attempts"]) == ("check_stock", 1)


# --- 2. a node set by hand is not a retry ----------------------------------------------------


def test_a_retry_then_a_skip_count_one_retry_and_name_the_node_set_by_hand(
    keel: Keel, tmp_path: Path
) -> None:
    ran = keel.run(flow("fix_and_retry"), "-i", f"marker={tmp_path / 'never'}")
    assert ran.proc.returncode == 1
    assert keel("retry", ran.run_id, "--yes").returncode == 1  # the marker is still missing
    skipped = keel("skip", ran.run_id, "needs_marker", "--output", '"by hand"', "--yes")
    assert skipped.returncode == 0, skipped.stderr

    lines = fits(keel.ok("show", ran.run_id).stdout)
    status = " ".join(" ".join(lines[: lines.index(line_of(lines, "version"))]).split())
    assert "(since it was retried by hand and needs_marker was set by hand)" in status
    assert "times" not in status
    shown = keel.show(ran.run_id)
    assert (shown["retries"], shown["set_by_hand"]) == (1, ["needs_marker"])
    assert node_of(shown, "needs_marker")["reason"] == f"set by hand by {shown_by(keel, ran)}"


def shown_by(keel: Keel, ran: test_run_cli.Ran) -> str:
    (event,) = [e for e in keel.history(ran.run_id) if e["kind"] == "node_set_by_hand"]
    return str(event["by"])


# --- 3. nothing wider than 80 columns ---------------------------------------------------------


def test_graph_with_a_long_condition_fits_in_80_columns(keel: Keel) -> None:
    drawn = keel.ok("graph", str(ROOT / "examples" / "claims.py"))

    lines = fits(drawn.stdout)
    escalate = lines.index(line_of(lines, "escalate", "claims:escalate"))
    assert "← fraud_score" in lines[escalate]
    assert lines[escalate + 1].strip() == "when: nodes.fraud_score.output > 0.8"
    assert "← extract, fraud_score, coverage" in line_of(lines, "decide", "claims:decide")


def test_graph_with_maps_and_a_long_approval_fits_in_80_columns(keel: Keel) -> None:
    mapped = fits(keel.ok("graph", flow("mapping")).stdout)
    square = mapped.index(line_of(mapped, "square_late", "map"))
    assert "← numbers" in mapped[square]
    assert mapped[square + 1].strip() == "over nodes.numbers.output (item → x)"

    intake = fits(keel.ok("graph", str(ROOT / "examples" / "document_intake.py")).stdout)
    text = " ".join(" ".join(intake).split())
    assert "approval 'Review extracted fields' by intake-team" in text
    assert "when: !nodes.check_fields.output.valid" in text


def test_verify_fits_in_80_columns_and_prints_the_whole_head_hash(keel: Keel) -> None:
    ran = keel.run(flow("fix_and_retry"), "-i", f"marker={keel.cwd}")
    assert ran.proc.returncode == 0, ran.proc.stderr

    verified = keel.ok("verify", ran.run_id)

    text = "\n".join(fits(verified.stdout))
    with closing(sqlite3.connect(keel.db)) as conn:
        (head,) = conn.execute("SELECT head_hash FROM runs WHERE id = ?", (ran.run_id,)).fetchone()
    assert f"✓ run {ran.run_id}: " in text
    assert "events intact" in text
    assert head in text.split()  # whole, on one line: to be copied elsewhere

    with closing(sqlite3.connect(keel.db)) as conn, conn:
        conn.execute("UPDATE runs SET status = 'failed' WHERE id = ?", (ran.run_id,))
    forged = keel("verify", ran.run_id)
    assert forged.returncode == 1
    said = " ".join(" ".join(fits(forged.stderr)).split())
    assert f"✗ run {ran.run_id}: the runs table disagrees with the history" in said


def test_a_map_run_summary_and_show_fit_in_80_columns(keel: Keel, tmp_path: Path) -> None:
    items = json.dumps([f"flaky-item-number-{n}" for n in range(3)])
    ran = keel.run(f"{COUNTS}:stock", "-i", f"items={items}", "-i", f"folder={tmp_path}")

    assert ran.proc.returncode == 0, ran.proc.stderr
    assert "3/3 items, 3 retries" in line_of(fits(ran.proc.stderr), "check_stock")
    fits(keel.ok("show", ran.run_id).stdout)


# --- 4. compensations in the order they ran ---------------------------------------------------


def test_the_saga_summary_lists_compensations_in_the_order_they_ran(keel: Keel) -> None:
    ran = keel.run(TRIP, "-i", "traveller=Ada", "-i", "city=Reykjavik")

    assert ran.proc.returncode == 1
    ran_order = [e["node"] for e in keel.history(ran.run_id) if e["kind"] == "node_started"]
    assert ran_order.index("compensate:book_hotel") < ran_order.index("compensate:book_flight")
    for listing in (ran.proc.stderr, keel.ok("show", ran.run_id).stdout):
        names = [word for word in listing.split() if word.startswith("compensate:")]
        assert names[:2] == ["compensate:book_hotel", "compensate:book_flight"], listing
    listed = [node["id"] for node in keel.show(ran.run_id)["nodes"]]
    assert listed.index("compensate:book_hotel") < listed.index("compensate:book_flight")
