"""What the commands print for people, read as a user reads it: at 80 columns, piped
(stdout is a pipe here, as under ``| less`` or in CI), and on a wide terminal.

Each table must keep its key columns (node names, statuses, attempt numbers, event
kinds) whole on every row, and no line may be wider than the console. The runs they
show say what they are doing, approvals show what is being approved, and ``keel show``
says what the history says even if the runs table was edited.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from tests.e2e import test_run_cli
from tests.e2e.test_run_cli import Keel, eventually, find, one_line
from tests.e2e.test_waiting_cli import Background

FLOWS = Path(__file__).resolve().with_name("outputflows.py")
CHECKOUT = f"{FLOWS}:checkout"
REFUND = f"{FLOWS}:refund"
HELD = f"{FLOWS}:held"
ERROR = (
    "ValueError: the payment provider refused the charge for ADA: the amount must be a "
    "positive number of cents, and -5 is not one"
)
#: seconds to wait for what a background process does
DEADLINE = 60


@pytest.fixture
def keel(tmp_path: Path) -> Keel:
    made: Keel = test_run_cli.keel.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    env = {k: v for k, v in made.env.items() if k not in ("COLUMNS", "LINES")}
    return replace(made, env=env)


def at_width(keel: Keel, columns: int | None) -> Keel:
    """``keel`` on a console ``columns`` wide (None: piped with no COLUMNS, so 80)."""
    return keel if columns is None else replace(keel, env={**keel.env, "COLUMNS": str(columns)})


def fits(text: str, width: int) -> str:
    too_wide = [line for line in text.splitlines() if len(line) > width]
    assert not too_wide, f"lines wider than {width}:\n" + "\n".join(too_wide)
    return text


def row(text: str, pattern: str) -> str:
    """The one line of ``text`` that matches ``pattern`` from its start."""
    found = [line for line in text.splitlines() if re.match(pattern, line)]
    assert len(found) == 1, f"{pattern!r} matches {len(found)} lines of:\n{text}"
    return found[0]


@pytest.fixture
def background(keel: Keel) -> Iterator[list[Background]]:
    started: list[Background] = []
    yield started
    for each in started:
        if each.proc.poll() is None:
            each.proc.kill()
            each.proc.wait(timeout=DEADLINE)


def start(keel: Keel, started: list[Background], *args: str) -> Background:
    out, err = keel.cwd / f"bg{len(started)}.out", keel.cwd / f"bg{len(started)}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keel", *args],
            cwd=keel.cwd, env=keel.env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    started.append(Background(proc, out, err))
    return started[-1]


def approval_listed(keel: Keel, node: str) -> dict[str, object]:
    found: list[dict[str, object]] = []

    def listed() -> bool:
        if not keel.db.exists():  # the keel run in the background has not created it yet
            return False
        found[:] = [a for a in json.loads(keel.ok("approvals", "--json").stdout)
                    if a["node"] == node]  # fmt: skip
        return bool(found)

    eventually(listed, f"approval {node} to be listed", DEADLINE)
    return found[0]


# --- 14. tables at 80 columns, piped, and wide ------------------------------------------------


@pytest.mark.parametrize("columns", [None, 80, 200], ids=["piped", "80", "200"])
def test_show_history_failed_and_runs_keep_their_key_columns(
    keel: Keel, columns: int | None
) -> None:
    width = columns or 80
    keel = at_width(keel, columns)
    bad = keel.run(CHECKOUT, "-i", "customer=ada", "-i", "amount=-5")
    assert bad.proc.returncode == 1
    fits(bad.proc.stderr, width)
    assert ERROR in one_line(bad.proc.stderr)
    good = keel.run(CHECKOUT, "-i", "customer=bob", "-i", "amount=5")
    assert good.proc.returncode == 0, good.proc.stderr

    shown = fits(keel.ok("show", bad.run_id).stdout, width)
    row(shown, r"✓\s+validate_customer_address\s+succeeded\s+1\s+\d+ ms")
    row(shown, r"✗\s+charge_credit_card\s+failed\s+1\s+\d+ ms")
    row(shown, r"·\s+send_confirmation_email\s+not started$")
    assert ERROR in one_line(shown)  # the run's reason, wrapped

    listed = fits(keel.ok("history", bad.run_id).stdout, width)
    events = keel.history(bad.run_id)
    for event in events:
        node = event.get("node") or ""
        line = row(listed, rf"\s*{event['seq']}\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\s+"
                           rf"{event['kind']}\b")  # fmt: skip
        if node:
            assert re.search(rf"\s{event['kind']}\s+{node}\b", line), line

    failed = fits(keel.ok("failed").stdout, width)
    row(failed, rf"{bad.run_id[:8]}\s+checkout\s+(\S+ \S+\s+)?charge_credit_card\s+1\b")
    assert ERROR in one_line(failed)
    assert good.run_id[:8] not in failed

    runs = fits(keel.ok("runs").stdout, width)
    row(runs, rf"{bad.run_id[:8]}\s+checkout\s+✗ failed\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d")
    row(runs, rf"{good.run_id[:8]}\s+checkout\s+✓ succeeded\s+\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d")


def test_a_wide_terminal_shows_whole_values_on_the_nodes_row(keel: Keel) -> None:
    keel = at_width(keel, 240)
    bad = keel.run(CHECKOUT, "-i", "customer=ada", "-i", "amount=-5")
    shown = fits(keel.ok("show", bad.run_id).stdout, 240)
    line = row(shown, r"✗\s+charge_credit_card\s+failed")
    assert '{"address": "ADA", "amount": -5}' in line
    assert ERROR in line


# --- 15. approvers see what they approve ----------------------------------------------------------


def test_approvers_see_the_description_and_the_form(
    keel: Keel, background: list[Background]
) -> None:
    start(keel, background, "run", REFUND, "-i", "customer=ada", "-i", "amount=250")
    listed = approval_listed(keel, "refund_review")
    run_id = str(listed["run_id"])
    assert listed["description"] == "refund 250 cents to ADA"

    approvals = fits(keel.ok("approvals").stdout, 80)
    row(approvals, rf"{run_id[:8]}\s+(refund\s+)?refund_review\s+Refund the customer")
    assert "refund 250 cents to ADA" in approvals
    assert "reason: string, required" in approvals

    shown = fits(keel.ok("show", run_id).stdout, 80)
    assert "refund 250 cents to ADA" in shown
    assert f"keel approve {run_id[:8]} refund_review" in one_line(shown)

    before = keel.history(run_id)
    refused = keel("approve", run_id, "refund_review")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "Traceback" not in refused.stderr
    fits(refused.stderr, 80)
    message = refused.stderr
    assert "'reason' is a required property" in message
    assert re.search(r"^\s+reason\s+string\s+required: why the refund is right$", message, re.M)
    assert re.search(r"^\s+percent\s+integer\s+optional, default 100$", message, re.M)
    assert f'keel approve {run_id[:8]} refund_review --data \'{{"reason": "..."}}\'' in message
    assert keel.history(run_id) == before, "a refused approval recorded something"


# --- 16. what a run that has not ended is doing ------------------------------------------------


def status_line(shown: str) -> str:
    return row(shown, r"  status    ")[len("  status    ") :]


def test_a_run_no_worker_has_taken_says_it_is_queued(keel: Keel) -> None:
    code = (
        "import keel, sys; from tests.e2e import outputflows as f; "
        "print(keel.Client(sys.argv[1]).start(f.checkout, {'customer': 'ada', 'amount': 5}))"
    )
    started = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{keel.db}"],
        cwd=keel.cwd, env=keel.env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    run_id = started.stdout.strip()

    (listed,) = keel.runs()
    assert (listed["status"], listed["activity"]) == ("running", "queued, waiting for a worker")
    row(keel.ok("runs").stdout, rf"{run_id[:8]}\s+checkout\s+· queued, waiting for a worker")
    assert status_line(keel.ok("show", run_id).stdout) == "queued, waiting for a worker"
    assert keel.show(run_id)["activity"] == "queued, waiting for a worker"


def test_runs_that_wait_or_run_say_so(
    keel: Keel, background: list[Background], tmp_path: Path
) -> None:
    start(keel, background, "run", REFUND, "-i", "customer=ada", "-i", "amount=250")
    waiting = str(approval_listed(keel, "refund_review")["run_id"])
    start(keel, background, "run", HELD, "-i", f"folder={tmp_path}")
    eventually((tmp_path / "started").exists, "the held task to start", DEADLINE)
    (held,) = [run["id"] for run in keel.runs() if run["workflow"] == "held"]

    runs = keel.ok("runs").stdout
    row(runs, rf"{waiting[:8]}\s+refund\s+⧗ waiting for approval\s")
    row(runs, rf"{held[:8]}\s+held\s+▶ running\s")
    assert status_line(keel.ok("show", waiting).stdout) == "waiting for approval"
    assert re.fullmatch(r"running on \S+:\d+", status_line(keel.ok("show", held).stdout))
    (tmp_path / "release").touch()


# --- 17. durations per attempt, and nodes that never started -----------------------------------


def test_a_failed_runs_never_started_nodes_say_so(keel: Keel) -> None:
    bad = keel.run(CHECKOUT, "-i", "customer=ada", "-i", "amount=-5")
    nodes = {node["id"]: node for node in keel.show(bad.run_id)["nodes"]}
    assert nodes["send_confirmation_email"]["status"] == "not_started"
    assert re.search(r"· send_confirmation_email\s+not started$", bad.proc.stderr, re.M)


# --- 10. show says what the history says; verify checks the runs table ----------------------


def test_a_forged_run_summary_fails_verify_and_show_keeps_the_historys(keel: Keel) -> None:
    good = keel.run(CHECKOUT, "-i", "customer=bob", "-i", "amount=5")
    bad = keel.run(CHECKOUT, "-i", "customer=ada", "-i", "amount=-5")
    with closing(sqlite3.connect(keel.db)) as conn, conn:
        conn.execute("UPDATE runs SET output = ? WHERE id = ?", ('"forged"', good.run_id))
        conn.execute("UPDATE runs SET status = 'succeeded', reason = NULL WHERE id = ?",
                     (bad.run_id,))  # fmt: skip

    for run, field, forged in ((good, "output", '"forged"'), (bad, "status", '"succeeded"')):
        verified = keel("verify", run.run_id)
        assert verified.returncode == 1, verified.stdout
        said = " ".join(verified.stderr.split())  # wrapped at 80 columns
        assert f"run {run.run_id}: the runs table disagrees with the history" in said
        assert f"the runs table says {field} {forged}" in said
    assert keel("verify", "--all").returncode == 1

    shown = keel.show(good.run_id)
    assert shown["output"] == {"result": "sent: charged 5"}
    assert shown["mismatches"] == ['the runs table says output "forged", the history says '
                                   '{"result": "sent: charged 5"}']  # fmt: skip
    text = keel.ok("show", good.run_id).stdout
    assert "sent: charged 5" in text
    assert "forged" in text  # named in the warning
    assert keel.show(bad.run_id)["status"] == "failed"
    assert status_line(keel.ok("show", bad.run_id).stdout).startswith("failed")


# --- 21. small ones ---------------------------------------------------------------------------


def test_history_of_an_unknown_node_is_an_error_naming_the_runs_nodes(keel: Keel) -> None:
    ran = keel.run(CHECKOUT, "-i", "customer=bob", "-i", "amount=5")
    result = keel("history", ran.run_id, "--node", "nope")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"run {ran.run_id[:8]} has no node 'nope' (nodes: validate_customer_address, "
        "charge_credit_card, send_confirmation_email)"
    )


def test_a_second_decision_says_who_decided_and_when(
    keel: Keel, background: list[Background]
) -> None:
    start(keel, background, "run", REFUND, "-i", "customer=ada", "-i", "amount=250")
    run_id = str(approval_listed(keel, "refund_review")["run_id"])
    keel.ok("approve", run_id, "refund_review", "--data", '{"reason": "ok"}', "--by", "ann")

    again = keel("approve", run_id, "refund_review", "--data", '{"reason": "no"}', "--by", "bob")
    rejected = keel("reject", run_id, "refund_review", "--by", "bob")
    for second in (again, rejected):
        assert second.returncode == 1
        assert re.fullmatch(
            r"approval 'refund_review' was already approved by ann at "
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n",
            second.stderr,
        ), second.stderr
    decisions = find(keel.history(run_id), "approval_decided", "refund_review")
    assert [d["by"] for d in decisions] == ["ann"]
    assert keel.runs()[0]["status"] == "running"  # it waits for its signal: not paused
