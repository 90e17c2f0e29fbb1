"""Runs that wait, end to end in real ``python -m keel`` processes: an approval decided
from another process after the executing one was killed, a signal sent before its node
is reached, a timer that fires after a restart, a rejection, pausing, child runs, and
the refusals of bad requests.

A run that waits is executed by a background ``keel run`` (or ``keel resume``) process
whose output goes to files; the test decides, signals, pauses or kills from outside,
as a person would, and checks what the processes printed and what the histories
record. Nothing here asserts on durations: waits for background work poll with a
generous deadline.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_run_cli
from tests.e2e.test_run_cli import (
    COMMAND_TIMEOUT,
    Keel,
    assert_well_formed,
    eventually,
    find,
    nodes_of,
    seq,
    worker_pid,
)

FLOWS = Path(__file__).resolve().with_name("waitflows.py")
#: seconds to wait for what background processes do (machines running tests are busy)
DEADLINE = 60


def flow(name: str) -> str:
    return f"{FLOWS}:{name}"


@pytest.fixture
def keel(tmp_path: Path) -> Keel:
    return test_run_cli.keel.__wrapped__(tmp_path)  # type: ignore[attr-defined, no-any-return]


# --- processes in the background --------------------------------------------------------------


@dataclass
class Background:
    """A ``keel`` command running in the background; its output goes to two files."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    @property
    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is released or flushed."""
        assert self.proc.poll() is None, f"it ended already:\n{self.stderr}"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=COMMAND_TIMEOUT)

    def finish(self) -> tuple[int, str, str]:
        """Wait for it to end: exit status, stdout, stderr."""
        try:
            code = self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {DEADLINE} s:\n{self.stderr}") from None
        return code, self.out.read_text(encoding="utf-8"), self.stderr


Start = Callable[..., Background]


@pytest.fixture
def start(keel: Keel) -> Iterator[Start]:
    """Start ``keel ARGS...`` in the background; whatever is still running at the end of
    the test is killed."""
    started: list[Background] = []

    def starter(*args: str) -> Background:
        name = f"bg{len(started)}"
        out, err = keel.cwd / f"{name}.out", keel.cwd / f"{name}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "keel", *args],
                cwd=keel.cwd, env=keel.env, stdin=subprocess.DEVNULL, stdout=stdout,
                stderr=stderr,
            )  # fmt: skip
        started.append(Background(proc, out, err))
        return started[-1]

    yield starter
    for background in started:
        if background.proc.poll() is None:
            background.proc.kill()
            background.proc.wait(timeout=COMMAND_TIMEOUT)


# --- reading the database and the CLI ---------------------------------------------------------


def recorded(keel: Keel, run_id: str) -> list[tuple[str, str | None]]:
    """The run's events as (kind, node), read straight from the database: cheap enough to
    poll for a moment that passes quickly (a timer about to fire)."""
    with closing(sqlite3.connect(keel.db, timeout=30)) as conn:
        rows = conn.execute(
            "SELECT kind, node FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
    return [(str(kind), node) for kind, node in rows]


def run_ids(keel: Keel) -> list[str]:
    """The runs started from the command line (not child runs), oldest first."""
    with closing(sqlite3.connect(keel.db, timeout=30)) as conn:
        try:
            rows = conn.execute(
                "SELECT id FROM runs WHERE parent_run IS NULL ORDER BY created_at"
            ).fetchall()
        except sqlite3.OperationalError:  # the first process has not made the tables yet
            return []
    return [str(row[0]) for row in rows]


def only_run(keel: Keel, count: int = 1) -> str:
    """The id of the newest run started from the command line, once there are ``count``."""
    eventually(lambda: len(run_ids(keel)) >= count, f"{count} run(s) to be recorded", DEADLINE)
    return run_ids(keel)[-1]


def approvals(keel: Keel, run_id: str | None = None) -> list[dict[str, Any]]:
    args = ["approvals", "--json"] + (["--run", run_id] if run_id else [])
    listed: list[dict[str, Any]] = json.loads(keel.ok(*args).stdout)
    return listed


def wait_for_approval(keel: Keel, run_id: str, node: str) -> dict[str, Any]:
    """Poll ``keel approvals --json`` until the run's approval ``node`` is listed."""
    found: list[dict[str, Any]] = []

    def listed() -> bool:
        found[:] = [a for a in approvals(keel, run_id) if a["node"] == node]
        return bool(found)

    eventually(listed, f"approval {node} of run {run_id[:8]} to be listed", DEADLINE)
    return found[0]


def children_of(keel: Keel, parent: str) -> list[dict[str, Any]]:
    return [run for run in keel.runs() if run["parent_run"] == parent]


def refused(keel: Keel, *args: str) -> str:
    """A command that must fail with a message and no traceback: its stderr."""
    result = keel(*args)
    assert result.returncode != 0, f"keel {' '.join(args)} succeeded:\n{result.stdout}"
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout == ""
    return " ".join(result.stderr.split())


def lines(path: Path) -> list[str]:
    """What the counted tasks wrote: one word per execution."""
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines()]


# --- 1. an approval survives a crash ----------------------------------------------------------


def test_an_approval_survives_a_crash_and_is_decided_from_another_process(
    keel: Keel, start: Start, tmp_path: Path
) -> None:
    log = tmp_path / "tasks.log"
    first = start("run", flow("reviewed"), "-i", f"log={log}", "-i", "amount=21")
    run_id = only_run(keel)

    listed = wait_for_approval(keel, run_id, "review")
    assert listed["title"] == "Review the amount"
    assert listed["description"] == "amount 21 doubles to 42"  # filled in when it opened
    assert listed["assignees"] == ["ann", "bob"]
    assert listed["form"]["required"] == ["reason"]
    assert listed["run_status"] == "running"
    eventually(lambda: "review waits for approval" in first.stderr, "the waiting line", DEADLINE)
    assert f"keel approve {run_id[:8]} review" in " ".join(first.stderr.split())
    waiting = nodes_of(keel.show(run_id))
    assert waiting["review"]["status"] == "awaiting"
    assert waiting["review"]["waits_for"] == "approval"
    assert waiting["review"]["wait"]["title"] == "Review the amount"
    assert waiting["finish"]["attempts"] == 0
    first.kill()

    second = start("resume", run_id, "--yes")
    approved = keel.ok(
        "approve", run_id[:8], "review", "--data", '{"reason": "looks right", "score": 7}',
        "--comment", "checked twice", "--by", "ann",
    )  # fmt: skip
    assert approved.stdout.strip() == f"run {run_id[:8]}: review approved (running)"

    code, out, err = second.finish()
    assert code == 0, err
    verdict = {"reason": "looks right", "score": 7}
    assert json.loads(out) == {"result": {"doubled": 42, "review": verdict}}
    events = keel.history(run_id)
    assert_well_formed(events)
    (decided,) = find(events, "approval_decided", "review")
    assert (decided["approved"], decided["by"], decided["data"], decided["comment"]) == (
        True, "ann", verdict, "checked twice",
    )  # fmt: skip
    assert find(events, "node_succeeded", "review")[0]["output"] == verdict
    assert seq(events, "node_scheduled", "finish") > seq(events, "approval_decided", "review")
    assert events[-1]["kind"] == "run_completed"
    # the task before the approval ran once, in the killed process; the one after, in B
    assert lines(log) == ["prepare", "finish"]
    assert len(find(events, "node_started", "prepare")) == 1
    assert worker_pid(find(events, "node_started", "prepare")[0]) == first.proc.pid
    assert worker_pid(find(events, "node_started", "finish")[0]) == second.proc.pid
    shown = keel.show(run_id)
    assert shown["status"] == "succeeded"
    assert nodes_of(shown)["review"]["status"] == "succeeded"
    assert "ann" in nodes_of(shown)["review"]["decision"]
    assert approvals(keel) == []


# --- 2. a signal sent before its node is reached ----------------------------------------------


def test_a_signal_sent_early_is_kept_across_a_crash_for_the_node_that_waits_for_it(
    keel: Keel, start: Start
) -> None:
    first = start("run", flow("gate_then_signal"))
    run_id = only_run(keel)
    wait_for_approval(keel, run_id, "gate")

    sent = keel.ok("signal", run_id, "go", "--data", '{"n": 1}', "--by", "sam")
    assert sent.stdout.strip() == f"run {run_id[:8]}: signal go delivered"
    nodes = nodes_of(keel.show(run_id))
    assert nodes["go"]["status"] == "waiting"  # kept, not taken: its node has not opened
    assert nodes["gate"]["status"] == "awaiting"
    first.kill()

    second = start("resume", run_id, "--yes")
    keel.ok("approve", run_id, "gate", "--by", "ann")
    code, out, err = second.finish()

    assert code == 0, err
    assert json.loads(out) == {"result": {"approved": {}, "signalled": {"n": 1}}}
    events = keel.history(run_id)
    assert_well_formed(events)
    (received,) = find(events, "signal_received")
    assert (received["name"], received["data"], received["by"]) == ("go", {"n": 1}, "sam")
    assert received["seq"] < seq(events, "approval_decided", "gate")
    assert received["seq"] < seq(events, "node_awaiting", "go")
    (taken,) = find(events, "node_succeeded", "go")
    assert taken["output"] == {"n": 1}
    assert find(events, "node_scheduled", "combine")[0]["args"]["signalled"] == {"n": 1}
    assert events[-1]["kind"] == "run_completed"


# --- 3. a timer fires after a restart ---------------------------------------------------------


def test_a_timer_fires_in_the_process_that_resumed_the_run(
    keel: Keel, start: Start, tmp_path: Path
) -> None:
    log = tmp_path / "tasks.log"
    first = start("run", flow("timed"), "-i", f"log={log}")
    run_id = only_run(keel)
    eventually(lambda: ("node_awaiting", "pause_3s") in recorded(keel, run_id),
               "the timer to start", DEADLINE)  # fmt: skip
    first.kill()
    assert ("timer_fired", "pause_3s") not in recorded(keel, run_id), "killed too late"

    second = start("resume", run_id, "--yes")
    code, out, err = second.finish()

    assert code == 0, err
    events = keel.history(run_id)
    assert_well_formed(events)
    (awaiting,) = find(events, "node_awaiting", "pause_3s")
    assert awaiting["waits_for"] == "timer"
    (fired,) = find(events, "timer_fired", "pause_3s")
    assert fired["at"] >= awaiting["until"]  # not early (the times are the recorded ones)
    assert seq(events, "node_scheduled", "after_timer") > fired["seq"]
    assert worker_pid(find(events, "node_started", "after_timer")[0]) == second.proc.pid
    timer_output = find(events, "node_succeeded", "pause_3s")[0]["output"]
    assert timer_output == awaiting["details"]["until"]  # the ISO time it waited for
    assert json.loads(out) == {"result": {"fired": timer_output}}
    assert lines(log) == ["before", "after"]  # each task once, across both processes
    assert events[-1]["kind"] == "run_completed"


# --- 4. a rejection ---------------------------------------------------------------------------


def test_a_rejection_from_the_cli_fails_the_run_and_names_who_rejected(
    keel: Keel, start: Start, tmp_path: Path
) -> None:
    log = tmp_path / "tasks.log"
    executing = start("run", flow("reviewed"), "-i", f"log={log}", "-i", "amount=5")
    run_id = only_run(keel)
    wait_for_approval(keel, run_id, "review")

    rejected = keel.ok("reject", run_id, "review", "--comment", "too much", "--by", "bob")
    assert rejected.stdout.strip() == f"run {run_id[:8]}: review rejected (failed)"
    code, out, err = executing.finish()

    assert code == 1
    assert out == ""
    assert "rejected by bob: too much" in " ".join(err.split())
    assert "Traceback" not in err
    shown = keel.show(run_id)
    assert shown["status"] == "failed"
    assert "rejected by bob" in shown["reason"]
    review = nodes_of(shown)["review"]
    assert review["status"] == "failed"
    assert review["error"] == {"type": "Rejected", "message": "rejected by bob: too much"}
    assert nodes_of(shown)["finish"]["attempts"] == 0
    events = keel.history(run_id)
    (decided,) = find(events, "approval_decided", "review")
    assert (decided["approved"], decided["by"], decided["comment"]) == (False, "bob", "too much")
    assert events[-1]["kind"] == "run_failed"
    assert not find(events, "node_scheduled", "finish")
    assert lines(log) == ["prepare"]
    assert approvals(keel) == []


# --- 5. pause and unpause ---------------------------------------------------------------------


def test_a_paused_run_records_what_finishes_but_starts_nothing_until_unpaused(
    keel: Keel, start: Start, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    executing = start("run", flow("file_gated"), "-i", f"folder={gate}")
    run_id = only_run(keel)
    eventually((gate / "started").exists, "the first task to start", DEADLINE)

    paused = keel.ok("pause", run_id, "--reason", "checking", "--by", "pat")
    assert paused.stdout.strip().startswith(f"run {run_id[:8]} paused")
    (gate / "release").touch()
    eventually(lambda: ("node_succeeded", "wait_for_file") in recorded(keel, run_id),
               "the running task's success to be recorded", DEADLINE)  # fmt: skip

    (listed,) = keel.runs()
    assert listed["status"] == "paused"
    shown = keel.show(run_id)
    assert shown["status"] == "paused"
    assert nodes_of(shown)["after_file"]["attempts"] == 0
    events = keel.history(run_id)
    assert seq(events, "run_paused") < seq(events, "node_succeeded", "wait_for_file")
    (pause,) = find(events, "run_paused")
    assert (pause["by"], pause["reason"]) == ("pat", "checking")
    assert not find(events, "node_scheduled", "after_file")
    assert executing.proc.poll() is None  # still executing the run: it waits
    again = refused(keel, "pause", run_id)
    assert "paused already" in again

    keel.ok("unpause", run_id, "--by", "pat")
    code, out, err = executing.finish()

    assert code == 0, err
    assert json.loads(out) == {"result": "then released"}
    events = keel.history(run_id)
    assert_well_formed(events)
    assert seq(events, "node_scheduled", "after_file") > seq(events, "run_unpaused")
    assert find(events, "run_unpaused")[0]["by"] == "pat"
    assert events[-1]["kind"] == "run_completed"
    assert keel.show(run_id)["status"] == "succeeded"


def test_a_decision_made_while_paused_is_acted_on_at_unpause(
    keel: Keel, start: Start, tmp_path: Path
) -> None:
    log = tmp_path / "tasks.log"
    executing = start("run", flow("reviewed"), "-i", f"log={log}", "-i", "amount=2")
    run_id = only_run(keel)
    wait_for_approval(keel, run_id, "review")
    keel.ok("pause", run_id, "--by", "pat")

    approved = keel.ok("approve", run_id, "review", "--data", '{"reason": "ok"}', "--by", "ann")
    assert approved.stdout.strip() == f"run {run_id[:8]}: review approved (paused)"
    events = keel.history(run_id)
    assert find(events, "approval_decided", "review", by="ann")  # recorded now...
    assert not find(events, "node_succeeded", "review")  # ...acted on at unpause
    assert not find(events, "node_scheduled", "finish")
    assert executing.proc.poll() is None

    keel.ok("unpause", run_id, "--by", "pat")
    code, out, err = executing.finish()

    assert code == 0, err
    assert json.loads(out) == {
        "result": {"doubled": 4, "review": {"reason": "ok", "score": 0}}
    }  # the form default is filled in
    events = keel.history(run_id)
    assert_well_formed(events)
    assert seq(events, "node_succeeded", "review") > seq(events, "run_unpaused")
    assert lines(log) == ["prepare", "finish"]


def test_an_approval_decided_while_paused_takes_no_second_decision(
    keel: Keel, start: Start, tmp_path: Path
) -> None:
    """Once ann approved, bob's rejection must be refused, paused or not: otherwise both
    are recorded, ``keel reject`` says it rejected, and the rejection is silently lost."""
    log = tmp_path / "tasks.log"
    start("run", flow("reviewed"), "-i", f"log={log}", "-i", "amount=2")
    run_id = only_run(keel)
    wait_for_approval(keel, run_id, "review")
    keel.ok("pause", run_id, "--by", "pat")
    keel.ok("approve", run_id, "review", "--data", '{"reason": "ok"}', "--by", "ann")

    second = keel("reject", run_id, "review", "--by", "bob")
    decisions = find(keel.history(run_id), "approval_decided", "review")
    assert [(d["by"], d["approved"]) for d in decisions] == [("ann", True)], second.stdout
    assert second.returncode == 1
    assert "review" in second.stderr
    assert approvals(keel) == [], "a decided approval is still listed as waiting"


# --- 6. child runs ----------------------------------------------------------------------------


def test_a_child_run_waits_for_its_approval_then_its_parent_goes_on(
    keel: Keel, start: Start
) -> None:
    executing = start("run", flow("parent_flow"), "-i", "name=Ada")
    parent = only_run(keel)
    eventually(lambda: bool(children_of(keel, parent)), "the child run", DEADLINE)
    (child_record,) = children_of(keel, parent)
    child = child_record["id"]
    assert child_record["workflow"] == "child_flow"
    assert child_record["parent_node"] == "child"
    assert child_record["input"] == {"name": "Ada"}
    wait_for_approval(keel, child, "signoff")
    shown = keel.show(parent)
    assert shown["children"] == [child]
    assert nodes_of(shown)["child"]["status"] == "awaiting"
    assert nodes_of(shown)["child"]["waits_for"] == "subworkflow"
    assert keel.show(child)["parent"] == {"run_id": parent, "node": "child"}
    unknown = refused(keel, "approve", parent, "signoff")
    assert "approvals: none" in unknown  # the approval is the child's, not the parent's

    keel.ok("approve", child, "signoff", "--data", '{"ok": true}', "--by", "ann")
    code, out, err = executing.finish()

    assert code == 0, err
    child_output = {"greeting": "hello Ada", "signoff": {"ok": True}}
    assert json.loads(out) == {"result": {"from_child": child_output}}
    records = {run["id"]: run for run in keel.runs()}
    assert records[child]["status"] == "succeeded"
    assert records[child]["output"] == child_output
    assert records[parent]["status"] == "succeeded"
    parent_events = keel.history(parent)
    assert_well_formed(parent_events)
    (ended,) = find(parent_events, "child_run_ended", "child")
    assert (ended["run_id"], ended["status"], ended["output"]) == (child, "succeeded",
                                                                  child_output)  # fmt: skip
    assert find(parent_events, "node_succeeded", "child")[0]["output"] == child_output
    child_events = keel.history(child)
    assert child_events[0]["parent"] == {"run_id": parent, "node": "child"}
    assert find(child_events, "approval_decided", "signoff")[0]["by"] == "ann"
    assert child_events[-1]["kind"] == "run_completed"


def test_cancelling_a_parent_run_cancels_its_child(keel: Keel, start: Start) -> None:
    executing = start("run", flow("parent_flow"), "-i", "name=Bob")
    parent = only_run(keel)
    eventually(lambda: bool(children_of(keel, parent)), "the child run", DEADLINE)
    (child,) = (run["id"] for run in children_of(keel, parent))
    wait_for_approval(keel, child, "signoff")

    cancelled = keel.ok("cancel", parent, "--reason", "not needed", "--by", "e2e")
    assert cancelled.stdout.strip() == f"run {parent[:8]} cancelled"
    code, _, err = executing.finish()

    assert code == 1, err
    assert f"parent_flow · run {parent[:8]} · cancelled" in err
    records = {run["id"]: run for run in keel.runs()}
    assert records[parent]["status"] == "cancelled"
    assert records[child]["status"] == "cancelled"
    assert parent[:8] in records[child]["reason"]
    assert approvals(keel) == []  # a cancelled run's approval waits for nobody
    assert find(keel.history(child), "run_cancelled")
    late = refused(keel, "approve", child, "signoff")
    assert "has ended (cancelled)" in late


# --- 7. bad requests are refused, and nothing is recorded -------------------------------------


def test_bad_decisions_and_signals_are_refused_with_what_was_wrong(
    keel: Keel, start: Start, tmp_path: Path
) -> None:
    log = tmp_path / "tasks.log"
    reviewing = start("run", flow("reviewed"), "-i", f"log={log}", "-i", "amount=1")
    review_run = only_run(keel)
    signalling = start("run", flow("gate_then_signal"))
    signal_run = only_run(keel, count=2)
    wait_for_approval(keel, review_run, "review")
    wait_for_approval(keel, signal_run, "gate")
    before = {run: keel.history(run) for run in (review_run, signal_run)}

    wrong_node = refused(keel, "approve", review_run, "wrong_node")
    assert "has no node 'wrong_node' (approvals: review)" in wrong_node
    a_task = refused(keel, "approve", review_run, "prepare")
    assert "'prepare' is a task node, not an approval" in a_task
    not_json = refused(keel, "approve", review_run, "review", "--data", "not json")
    assert "--data is not valid JSON" in not_json
    assert "'not json'" in not_json
    missing = refused(keel, "approve", review_run, "review", "--data", '{"score": 3}')
    assert "approval 'review' does not match its schema" in missing
    assert "'reason' is a required property" in missing
    typo = refused(keel, "approve", review_run, "review", "--data", '{"reason": "a", "nope": 1}')
    assert "data has no field 'nope' (fields: reason, score)" in typo
    wrong_type = refused(keel, "approve", review_run, "review", "--data", '{"reason": 5}')
    assert "data.reason: 5 is not of type 'string'" in wrong_type
    unknown = refused(keel, "signal", signal_run, "unknown", "--data", "{}")
    assert "waits for no signal 'unknown' (signals: go)" in unknown
    no_signals = refused(keel, "signal", review_run, "go")
    assert "(signals: none)" in no_signals
    not_yet = refused(keel, "approve", signal_run, "go")
    assert "'go' is a signal node, not an approval" in not_yet

    for run, events in before.items():
        assert keel.history(run) == events, f"run {run[:8]} changed"
    assert {(a["run_id"], a["node"]) for a in approvals(keel)} == {
        (review_run, "review"),
        (signal_run, "gate"),
    }
    # the run still takes a good decision
    keel.ok("approve", review_run, "review", "--data", '{"reason": "fine"}')
    code, out, err = reviewing.finish()
    assert code == 0, err
    assert json.loads(out)["result"]["review"] == {
        "reason": "fine",
        "score": 0,
    }  # with the form default
    assert signalling.proc.poll() is None  # still waiting at its gate
