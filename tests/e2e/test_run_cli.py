"""``keel run`` and the commands that read runs back, as a user runs them: one real
``python -m keel`` subprocess per call, a fresh database per test.

Every test checks what the command printed and what the run's history records
(``keel history RUN --json``). The workflows are in ``flows_e2e.py`` beside this file.
Nothing here asserts on durations: tasks that must overlap meet at a barrier, and
waits for background work poll with a generous deadline.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.processes import process_gone

ROOT = Path(__file__).resolve().parents[2]
FLOWS = Path(__file__).resolve().with_name("flows_e2e.py")
MODULE = "tests.e2e.flows_e2e"
YAML_FLOW = Path(__file__).resolve().parent / "flows" / "yaml_chain.yaml"
#: seconds a single command may take before the test fails (generous: machines are busy)
COMMAND_TIMEOUT = 60
#: seconds to wait for background work (a detached run, a worker process ending)
DEADLINE = 30

Event = dict[str, Any]


def flow(name: str) -> str:
    return f"{FLOWS}:{name}"


def one_line(text: str) -> str:
    """Text with its whitespace collapsed: the summary wraps at the console width."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Ran:
    """A finished ``keel run``: the process and the run it made."""

    proc: subprocess.CompletedProcess[str]
    run_id: str

    @property
    def output(self) -> Any:
        assert self.proc.returncode == 0, self.proc.stderr
        return json.loads(self.proc.stdout)


@dataclass(frozen=True)
class Keel:
    """The ``keel`` command bound to one test's folder and database."""

    cwd: Path
    env: dict[str, str]
    db: Path

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "keel", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self(*args)
        assert result.returncode == 0, f"keel {' '.join(args)}:\n{result.stderr}"
        return result

    def run(self, target: str, *args: str) -> Ran:
        """``keel run``; the run id is read from the database (the newest run)."""
        proc = self("run", target, *args)
        return Ran(proc, self.newest_run_id())

    def newest_run_id(self) -> str:
        with closing(sqlite3.connect(self.db)) as conn:
            row = conn.execute("SELECT id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()
        assert row is not None, "no run was recorded"
        return str(row[0])

    def history(self, run_id: str, node: str | None = None) -> list[Event]:
        args = ["history", run_id, "--json"] + (["--node", node] if node else [])
        return [json.loads(line) for line in self.ok(*args).stdout.splitlines() if line]

    def show(self, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.ok("show", run_id, "--json").stdout)
        return data

    def runs(self, *args: str) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = json.loads(self.ok("runs", "--json", *args).stdout)
        return data


@pytest.fixture
def keel(tmp_path: Path) -> Keel:
    db = tmp_path / "keel.db"
    env = {key: value for key, value in os.environ.items() if key != "KEEL_DATABASE_URL"}
    env["KEEL_DATABASE_URL"] = f"sqlite:///{db}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return Keel(tmp_path, env, db)


# --- reading histories ---------------------------------------------------------------------


def kinds(events: list[Event]) -> list[str]:
    return [event["kind"] for event in events]


def find(events: list[Event], kind: str, node: str | None = None, **fields: Any) -> list[Event]:
    return [
        event
        for event in events
        if event["kind"] == kind
        and (node is None or event.get("node") == node)
        and all(event.get(name) == value for name, value in fields.items())
    ]


def seq(events: list[Event], kind: str, node: str | None = None, **fields: Any) -> int:
    """The sequence number of the one event that matches."""
    (event,) = find(events, kind, node, **fields)
    return int(event["seq"])


def nodes_of(shown: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["id"]: node for node in shown["nodes"]}


def assert_well_formed(events: list[Event]) -> None:
    """Numbered 1..n, chained from the genesis hash, opened by run_started."""
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert events[0]["kind"] == "run_started"
    assert events[0]["prev_hash"] == "0" * 64
    assert len({event["prev_hash"] for event in events}) == len(events)


def peak_in_flight(events: list[Event], node: str, opened: str) -> int:
    """The most items of a map that were ``opened`` (scheduled/started) and not yet ended."""
    out: set[int] = set()
    peak = 0
    for event in events:
        if event.get("node") != node or event.get("item") is None:
            continue
        if event["kind"] == opened:
            out.add(event["item"])
        elif event["kind"] in ("node_succeeded", "node_failed"):
            out.discard(event["item"])
        peak = max(peak, len(out))
    return peak


# --- waiting for background work -----------------------------------------------------------


def eventually(check: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    ends = time.monotonic() + deadline
    while not check():
        if time.monotonic() > ends:
            raise AssertionError(f"gave up after {deadline} s waiting for {what}")
        time.sleep(0.1)


def worker_pid(started: Event) -> int:
    """The process that ran an attempt, from its node_started event's lease holder."""
    host, pid, _, _ = started["worker"].rsplit(":", 3)
    assert host == socket.gethostname()
    return int(pid)


# --- inline execution ----------------------------------------------------------------------


def test_keel_run_runs_proven_fast_steps_on_its_own_thread_unless_inline_is_off(
    keel: Keel,
) -> None:
    """``keel run`` is a worker too: ``KEEL_INLINE=false`` (or ``inline = false``) keeps
    every step off its thread, as for ``keel worker``."""
    on = keel.run(flow("threads_seen")).output["result"]
    assert "MainThread" in on, "steps proven fast ran on the command's own thread"
    off = Keel(keel.cwd, {**keel.env, "KEEL_INLINE": "false"}, keel.db)
    threads = off.run(flow("threads_seen")).output["result"]
    assert len(threads) == 6
    assert "MainThread" not in threads


# --- 1. a sequential chain ------------------------------------------------------------------


def test_sequential_chain_passes_data_in_order(keel: Keel) -> None:
    ran = keel.run(flow("sequential"), "--input", '{"text": "32"}')

    assert ran.output == {"result": "total=42"}
    assert f"sequential · run {ran.run_id[:8]} · succeeded" in ran.proc.stderr
    events = keel.history(ran.run_id)
    assert_well_formed(events)
    chain = ("parse_number", "add_ten", "describe")
    assert kinds(events) == [
        "run_started",
        *[kind for _ in chain for kind in ("node_scheduled", "node_started", "node_succeeded")],
        "run_completed",
    ]
    assert events[0]["workflow"] == "sequential"
    assert events[0]["input"] == {"text": "32", "label": "total"}  # the default filled in
    for node in chain:
        assert (
            seq(events, "node_scheduled", node)
            < seq(events, "node_started", node)
            < seq(events, "node_succeeded", node)
        )
    assert seq(events, "node_scheduled", "add_ten") > seq(events, "node_succeeded", "parse_number")
    assert seq(events, "node_scheduled", "describe") > seq(events, "node_succeeded", "add_ten")
    # the data handed from step to step is on record
    assert find(events, "node_scheduled", "add_ten")[0]["args"] == {"value": 32}
    assert find(events, "node_scheduled", "describe")[0]["args"] == {"value": 42, "label": "total"}
    assert [find(events, "node_succeeded", node)[0]["output"] for node in chain] == [
        32,
        42,
        "total=42",
    ]
    assert events[-1] == {**events[-1], "kind": "run_completed", "output": ran.output}

    verified = keel("verify", ran.run_id)
    assert verified.returncode == 0, verified.stderr
    assert f"run {ran.run_id}: {len(events)} events intact" in verified.stdout


# --- 2. parallel branches --------------------------------------------------------------------


def test_independent_branches_run_concurrently_then_join(keel: Keel) -> None:
    # left and right meet at a threading.Barrier(2): one after the other, they would fail
    ran = keel.run(flow("parallel"), "-i", "n=4")

    assert ran.output == {"result": {"left": 8, "right": 12, "sum": 20}}
    events = keel.history(ran.run_id)
    assert_well_formed(events)
    first_success = min(seq(events, "node_succeeded", branch) for branch in ("left", "right"))
    for branch in ("left", "right"):
        assert seq(events, "node_scheduled", branch) < first_success
        assert seq(events, "node_started", branch) < first_success
        assert seq(events, "node_scheduled", branch) > seq(events, "node_succeeded", "seed")
    assert seq(events, "node_scheduled", "join_pair") > max(
        seq(events, "node_succeeded", "left"), seq(events, "node_succeeded", "right")
    )
    assert find(events, "node_scheduled", "join_pair")[0]["args"] == {"left": 8, "right": 12}
    assert not find(events, "node_failed")  # nobody broke the barrier
    assert events[-1]["kind"] == "run_completed"


# --- 3. a condition ---------------------------------------------------------------------------


def test_false_condition_skips_the_branch_and_the_join_still_runs(keel: Keel) -> None:
    ran = keel.run(flow("conditional"), "-i", "x=5")

    assert ran.output == {"combined": {"base": 10, "extra": None}, "followup": None}
    events = keel.history(ran.run_id)
    assert_well_formed(events)
    (skipped,) = find(events, "node_skipped", "bonus")
    assert "nodes.double.output > 100" in skipped["reason"]
    assert "false" in skipped["reason"]
    assert skipped["upstream_failed"] is False
    # what reads only the skipped branch is skipped by its join rule, not run
    (followup,) = find(events, "node_skipped", "announce")
    assert "none_failed" in followup["reason"]
    assert not find(events, "node_scheduled", "bonus")
    assert not find(events, "node_scheduled", "announce")
    assert seq(events, "node_scheduled", "combine") > seq(events, "node_skipped", "bonus")
    assert find(events, "node_scheduled", "combine")[0]["args"] == {"base": 10, "extra": None}
    assert events[-1]["kind"] == "run_completed"

    nodes = nodes_of(keel.show(ran.run_id))
    assert nodes["bonus"]["status"] == "skipped"
    assert "nodes.double.output > 100" in nodes["bonus"]["reason"]
    assert nodes["bonus"]["attempts"] == 0
    assert nodes["announce"]["status"] == "skipped"
    assert nodes["combine"]["status"] == "succeeded"

    # the same workflow with the condition true runs the branch
    taken = keel.ok("run", flow("conditional"), "-i", "x=60", "-q")
    assert json.loads(taken.stdout) == {
        "combined": {"base": 120, "extra": 1120},
        "followup": "bonus 1120",
    }


# --- 4. maps ------------------------------------------------------------------------------------


def test_map_over_an_upstream_list_keeps_item_order_and_respects_max_parallel(keel: Keel) -> None:
    ran = keel.run(flow("mapping"), "-i", "n=6")

    # square_late makes later items end first; the output is still in item order
    assert ran.output == {
        "squares": [0, 1, 4, 9, 16, 25],
        "tags": [f"item-{i}" for i in range(6)],
    }
    events = keel.history(ran.run_id)
    assert_well_formed(events)
    for node, outputs in (("square_late", ran.output["squares"]), ("capped", ran.output["tags"])):
        (expanded,) = find(events, "map_expanded", node)
        assert expanded["count"] == 6
        assert expanded["seq"] > seq(events, "node_succeeded", "numbers")
        scheduled = find(events, "node_scheduled", node)
        assert sorted(event["item"] for event in scheduled) == list(range(6))
        assert all(event["args"]["x"] == event["item"] for event in scheduled)
        items = [item for item in find(events, "node_succeeded", node) if item["item"] is not None]
        assert sorted(event["item"] for event in items) == list(range(6))
        assert {event["item"]: event["output"] for event in items} == dict(enumerate(outputs))
        (whole,) = find(events, "node_succeeded", node, item=None)
        assert whole["output"] == outputs
        assert whole["seq"] > max(event["seq"] for event in items)
    assert all(event["args"]["n"] == 6 for event in find(events, "node_scheduled", "square_late"))
    # capped is keel.map(..., max_parallel=2): never more than two items out at once
    assert peak_in_flight(events, "capped", "node_started") == 2
    assert peak_in_flight(events, "capped", "node_scheduled") == 2
    assert peak_in_flight(events, "square_late", "node_started") > 2  # unlimited: all at once


# --- 5. failure ---------------------------------------------------------------------------------


def test_a_failing_task_fails_the_run_and_nothing_downstream_runs(keel: Keel) -> None:
    ran = keel.run(flow("failing"), "-i", "amount=-5")

    assert ran.proc.returncode == 1
    assert ran.proc.stdout == ""
    assert "ValueError: amount must not be negative, got -5" in one_line(ran.proc.stderr)
    assert "Traceback" not in ran.proc.stderr

    failed = keel.runs("--status", "failed")
    assert [run["id"] for run in failed] == [ran.run_id]
    assert failed[0]["reason"] == (
        "node 'check_amount' failed: ValueError: amount must not be negative, got -5"
    )

    shown = keel.show(ran.run_id)
    assert shown["status"] == "failed"
    nodes = nodes_of(shown)
    assert nodes["check_amount"]["status"] == "failed"
    assert nodes["check_amount"]["error"] == {
        "type": "ValueError",
        "message": "amount must not be negative, got -5",
    }
    assert nodes["book"]["attempts"] == 0
    assert nodes["book"]["started_at"] is None

    events = keel.history(ran.run_id)
    assert_well_formed(events)
    assert kinds(events) == [
        "run_started",
        "node_scheduled",
        "node_started",
        "node_failed",
        "run_failed",
    ]
    (node_failed,) = find(events, "node_failed", "check_amount")
    assert node_failed["error"]["type"] == "ValueError"
    assert "raise ValueError" in node_failed["error"]["traceback"]
    assert events[-1]["node"] == "check_amount"
    assert keel.history(ran.run_id, node="book") == []


def test_keel_failed_lists_failed_runs_with_the_failing_node_and_error(keel: Keel) -> None:
    ok = keel.run(flow("failing"), "-i", "amount=5")
    bad = keel.run(flow("failing"), "-i", "amount=-5")
    assert (ok.proc.returncode, bad.proc.returncode) == (0, 1)

    (row,) = json.loads(keel.ok("failed", "--json").stdout)

    assert (row["id"], row["node"], row["attempts"]) == (bad.run_id, "check_amount", 1)
    assert row["error"] == {
        "type": "ValueError",
        "message": "amount must not be negative, got -5",
    }
    table = keel.ok("failed").stdout
    assert bad.run_id[:8] in table
    assert ok.run_id[:8] not in table
    assert "check_amount" in table


# --- 6. retries -----------------------------------------------------------------------------------


def test_retries_run_the_task_again_until_it_succeeds(keel: Keel) -> None:
    ran = keel.run(flow("retrying"), "-i", "x=7")

    assert ran.output == {"result": {"x": 7, "attempt": 3}}
    events = keel.history(ran.run_id, node="flaky")
    assert [(event["kind"], event["attempt"]) for event in events] == [
        ("node_scheduled", 1),
        ("node_started", 1),
        ("node_failed", 1),
        ("node_scheduled", 2),
        ("node_started", 2),
        ("node_failed", 2),
        ("node_scheduled", 3),
        ("node_started", 3),
        ("node_succeeded", 3),
    ]
    for attempt, failure in enumerate(find(events, "node_failed"), start=1):
        assert failure["error"]["type"] == "ConnectionError"
        assert failure["error"]["message"] == f"attempt {attempt} failed"
        assert failure["error"]["retryable"] is True
    assert find(events, "node_succeeded")[0]["output"] == {"x": 7, "attempt": 3}
    # each retry waits its backoff (0.2 s, then 0.4 s, each shortened by up to 10 %
    # jitter), recorded on the retry and honoured by the queue
    failed, scheduled, started = (find(events, kind) for kind in
                                  ("node_failed", "node_scheduled", "node_started"))  # fmt: skip
    assert scheduled[0]["not_before"] is None
    for retry, (base, failure) in enumerate(zip((0.2, 0.4), failed, strict=True), start=1):
        waited = scheduled[retry]["not_before"] - failure["at"]
        assert base * 0.9 <= waited <= base + 1e-9
        assert started[retry]["at"] >= scheduled[retry]["not_before"]
    shown = keel.show(ran.run_id)
    assert shown["status"] == "succeeded"
    assert nodes_of(shown)["flaky"]["attempts"] == 3


def test_an_error_listed_in_never_retry_on_is_not_retried(keel: Keel) -> None:
    ran = keel.run(flow("never_retried"), "-i", "key=k")

    assert ran.proc.returncode == 1
    events = keel.history(ran.run_id, node="lookup")
    assert [failure["attempt"] for failure in find(events, "node_failed")] == [1]
    assert find(events, "node_failed")[0]["error"]["retryable"] is False
    assert [scheduled["attempt"] for scheduled in find(events, "node_scheduled")] == [1]


def test_a_sync_task_that_overruns_its_timeout_fails(keel: Keel) -> None:
    ran = keel.run(flow("sync_timeout"))  # timeout 0.5 s, the task takes 2 s

    events = keel.history(ran.run_id, node="overrun")
    assert [failure["error"]["type"] for failure in find(events, "node_failed")] == ["TimeoutError"]
    assert not find(events, "node_succeeded")
    assert ran.proc.returncode == 1
    # the thread could not be stopped; keel run did not wait for it (see the next test),
    # and a worker that outlives it records what it returns as discarded (unit tests)


def test_keel_run_exits_when_the_run_ends_and_names_the_thread_it_abandoned(keel: Keel) -> None:
    # the task sleeps 600 s past its 0.5 s timeout; keel run must not wait for it: the
    # bound is generous, the point is that the process exits at all once the run ends
    proc = subprocess.run(
        [sys.executable, "-m", "keel", "run", flow("abandons_a_thread")],
        cwd=keel.cwd, env=keel.env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"result": 11}
    run_id = keel.newest_run_id()
    assert keel.show(run_id)["status"] == "succeeded"
    abandoned = [line for line in proc.stderr.splitlines() if "abandoned" in line]
    assert abandoned == [
        f"run {run_id[:8]}: abandoned the timed-out thread of node ignores_timeout, attempt 1"
    ]


def test_a_process_isolated_task_is_killed_at_its_timeout(keel: Keel, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    ran = keel.run(flow("process_timeout"), "-i", f"pid_file={pid_file}")

    assert ran.proc.returncode == 1
    events = keel.history(ran.run_id, node="hang")
    (failure,) = find(events, "node_failed")
    assert failure["error"]["type"] == "TimeoutError"
    assert "was killed" in failure["error"]["message"]
    with pytest.raises(ProcessLookupError):  # the task's process is gone, not left behind
        os.kill(int(pid_file.read_text()), 0)


def test_a_run_past_its_deadline_fails(keel: Keel) -> None:
    ran = keel.run(flow("past_deadline"))  # deadline 1 s, its one step takes 3 s

    assert ran.proc.returncode == 1
    events = keel.history(ran.run_id)
    kinds = [e["kind"] for e in events]
    assert kinds[-2:] == ["run_deadline_exceeded", "run_failed"]
    assert "deadline (1 s)" in events[-1]["reason"]
    assert not find(events, "node_succeeded")


def test_a_failure_routed_to_a_handler_does_not_fail_the_run(keel: Keel) -> None:
    ran = keel.run(flow("handled_failure"), "-i", "amount=5")

    assert ran.proc.returncode == 0, ran.proc.stderr
    (handled,) = find(keel.history(ran.run_id), "node_succeeded", "tell_ops")
    assert handled["output"] == "ops told: ConnectionError after 2 attempt(s)"
    assert keel.show(ran.run_id)["status"] == "succeeded"


# --- 7. results: not JSON, and pydantic models ---------------------------------------------------


@pytest.mark.parametrize(
    ("workflow", "node", "returned"),
    [("not_json_set", "opaque_set", "set"), ("not_json_object", "bare_object", "object")],
)
def test_a_result_that_is_not_json_is_a_recorded_failure(
    keel: Keel, workflow: str, node: str, returned: str
) -> None:
    ran = keel.run(flow(workflow))

    assert ran.proc.returncode == 1
    assert "Traceback" not in ran.proc.stderr
    assert "not JSON-serialisable" in one_line(ran.proc.stderr)
    events = keel.history(ran.run_id)
    assert_well_formed(events)
    (failure,) = find(events, "node_failed", node)  # once: retrying would not help
    assert failure["error"]["type"] == "ResultNotJSON"
    assert (
        f"the task returned {returned}, which is not JSON-serialisable"
        in (failure["error"]["message"])
    )
    assert failure["error"]["retryable"] is False
    assert not find(events, "node_succeeded")
    assert events[-1]["kind"] == "run_failed"
    assert keel.runs("--status", "failed")[0]["id"] == ran.run_id


def test_pydantic_results_arrive_as_models_or_dicts_downstream(keel: Keel) -> None:
    ran = keel.run(flow("models"), "-i", "x=2", "-i", "y=3")

    assert ran.output == {
        "typed": {"type": "Point", "sum": 5},  # a parameter annotated Point gets a Point
        "raw": {"type": "dict", "keys": ["x", "y"]},  # one annotated dict gets the data
        "field": 200,  # point.x in the workflow reads the field
    }
    events = keel.history(ran.run_id)
    assert find(events, "node_succeeded", "make_point")[0]["output"] == {"x": 2, "y": 3}
    assert find(events, "node_scheduled", "typed_use")[0]["args"] == {"point": {"x": 2, "y": 3}}
    assert find(events, "node_scheduled", "field_use")[0]["args"] == {"x": 2}
    assert events[-1]["kind"] == "run_completed"


# --- 8. async tasks --------------------------------------------------------------------------


def test_async_tasks_run_and_overlap(keel: Keel) -> None:
    # fetch_a and fetch_b meet at an asyncio.Barrier(2) with a 10 s timeout
    ran = keel.run(flow("async_flow"))

    assert ran.output == {"result": {"names": ["a", "b"], "arrivals": [0, 1]}}
    events = keel.history(ran.run_id)
    assert_well_formed(events)
    first_success = min(
        seq(events, "node_succeeded", "fetch_a"), seq(events, "node_succeeded", "fetch_b")
    )
    assert seq(events, "node_started", "fetch_a") < first_success
    assert seq(events, "node_started", "fetch_b") < first_success
    assert seq(events, "node_scheduled", "async_merge") > max(
        seq(events, "node_succeeded", "fetch_a"), seq(events, "node_succeeded", "fetch_b")
    )
    assert not find(events, "node_failed")
    assert events[-1]["kind"] == "run_completed"


# --- 9. the step context --------------------------------------------------------------------------


def test_a_step_context_parameter_receives_the_attempt(keel: Keel) -> None:
    ran = keel.run(flow("context_flow"), "--input", '{"labels": ["a", "b"]}')

    run_id = ran.run_id
    single = ran.output["single"]
    assert single == {
        "label": "one",
        "run_id": run_id,
        "workflow": "context_flow",
        "node": "whoami",
        "attempt": 1,
        "item": None,
        "key": f"{run_id}:whoami:1",
        "is_current": True,  # keel.context() is the same object
    }
    assert [(item["item"], item["label"], item["key"]) for item in ran.output["items"]] == [
        (0, "a", f"{run_id}:each[0]:1"),
        (1, "b", f"{run_id}:each[1]:1"),
    ]
    events = keel.history(run_id)
    assert seq(events, "node_started", "whoami", attempt=1) > 0
    # the context is injected, never part of the recorded arguments
    assert find(events, "node_scheduled", "whoami")[0]["args"] == {"label": "one"}
    assert [event["args"] for event in find(events, "node_scheduled", "each")] == [
        {"label": "a"},
        {"label": "b"},
    ]
    assert events[-1]["kind"] == "run_completed"


# --- 10. input ---------------------------------------------------------------------------------


def test_input_from_pairs_and_files_and_a_refused_input(keel: Keel, tmp_path: Path) -> None:
    refused = keel("run", flow("greeting"), "-i", "times=many")
    assert refused.returncode == 1
    message = refused.stderr
    assert "the input of workflow 'greeting' does not match its schema" in message
    assert "input.times: 'many' is not of type 'integer'" in message
    assert "'name' is a required property" in message  # every problem at once
    assert "Traceback" not in message
    assert keel.runs() == []

    paired = keel.run(flow("greeting"), "-i", "name=Ada", "-i", "times=2")
    assert paired.output == {"result": "hello Ada hello Ada!"}
    events = keel.history(paired.run_id)
    assert events[0]["input"] == {"name": "Ada", "times": 2, "punctuation": "!"}
    assert find(events, "node_scheduled", "greet")[0]["args"] == {
        "name": "Ada",
        "times": 2,
        "punctuation": "!",
    }

    (tmp_path / "input.json").write_text(
        json.dumps({"name": "Bob", "times": 3, "punctuation": "?"}), encoding="utf-8"
    )
    from_file = keel.run(flow("greeting"), "--input", "@input.json", "-q")
    assert from_file.output == {"result": "hello Bob hello Bob hello Bob?"}
    assert from_file.proc.stderr == ""  # -q: only the output


# --- 11. --detach --------------------------------------------------------------------------------


def test_detach_prints_the_run_id_and_the_run_finishes_in_the_background(keel: Keel) -> None:
    started = keel.ok("run", flow("sequential"), "--input", '{"text": "1"}', "--detach")

    assert re.fullmatch(r"[0-9a-f]{32}\n", started.stdout), started.stdout
    run_id = started.stdout.strip()

    def succeeded() -> bool:
        (record,) = keel.runs()
        assert record["status"] in ("pending", "running", "succeeded"), record
        return bool(record["status"] == "succeeded")

    eventually(succeeded, f"run {run_id} to succeed")
    shown = keel.show(run_id)
    assert shown["id"] == run_id
    assert shown["output"] == {"result": "total=11"}
    assert {node["status"] for node in shown["nodes"]} == {"succeeded"}
    events = keel.history(run_id)
    assert_well_formed(events)
    assert events[-1]["kind"] == "run_completed"
    # the attempts ran in the background process, which ends once the run has
    worker = worker_pid(find(events, "node_started", "parse_number")[0])
    assert worker != os.getpid()
    eventually(lambda: process_gone(worker), f"background worker {worker} to exit")
    log = keel.cwd / ".keel" / "logs" / f"{run_id}.log"
    assert "Traceback" not in log.read_text(encoding="utf-8")


# --- 12. cancel ----------------------------------------------------------------------------------


def test_cancel_a_run_waiting_inside_a_long_task(keel: Keel, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    started = keel.ok("run", flow("gated"), "-i", f"folder={gate}", "--detach")
    run_id = started.stdout.strip()
    eventually((gate / "started").exists, "the first task to start")

    cancelled = keel("cancel", run_id, "--reason", "no longer needed", "--by", "e2e")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"run {run_id[:8]} cancelled"
    (gate / "release").touch()  # let the task end: its outcome must be discarded
    attempt = json.loads((gate / "started").read_text(encoding="utf-8"))
    assert attempt["key"] == f"{run_id}:wait_for_release:1"
    worker = attempt["pid"]
    eventually(lambda: process_gone(worker), f"background worker {worker} to exit")

    events = keel.history(run_id)
    assert_well_formed(events)
    assert kinds(events) == ["run_started", "node_scheduled", "node_started", "run_cancelled"]
    assert worker_pid(events[2]) == worker
    assert events[-1]["reason"] == "no longer needed"
    assert events[-1]["by"] == "e2e"
    assert not [event for event in events if event.get("node") == "after_release"]
    shown = keel.show(run_id)
    assert shown["status"] == "cancelled"
    assert shown["reason"] == "no longer needed"
    assert nodes_of(shown)["after_release"]["attempts"] == 0

    again = keel("cancel", run_id)
    assert again.returncode == 1
    assert "already ended (cancelled)" in again.stderr


# --- 13. errors on run ids; tampering ------------------------------------------------------------


def test_unknown_and_ambiguous_run_ids_are_refused(keel: Keel) -> None:
    from keel.runtime import open_store, start_run
    from tests.e2e import flows_e2e

    # two runs whose ids share a prefix (ids are random, so they are made here)
    store = open_store(keel.env["KEEL_DATABASE_URL"])
    try:
        for digit in "12":
            spec = flows_e2e.greeting.spec
            start_run(store, spec, {"name": "x"}, origin=flow("greeting"), run_id=f"abc{digit}" * 8)
    finally:
        store.close()

    for command in (("show", "0123456789"), ("cancel", "0123456789")):
        unknown = keel(*command)
        assert unknown.returncode == 1, command
        assert "no run with id '0123456789'" in unknown.stderr, command
        assert "Traceback" not in unknown.stderr
    ambiguous = keel("show", "abc")
    assert ambiguous.returncode == 1
    assert "'abc' matches several runs: give more characters" in ambiguous.stderr
    events = keel.history("abc2")  # a unique prefix is enough
    assert events[0]["kind"] == "run_started"
    assert events[0]["input"] == {"name": "x", "times": 1, "punctuation": "!"}


def test_verify_detects_an_event_edited_in_the_database(keel: Keel) -> None:
    ran = keel.run(flow("sequential"), "--input", '{"text": "32"}', "-q")
    assert ran.output == {"result": "total=42"}
    events = keel.history(ran.run_id)
    target = seq(events, "node_succeeded", "parse_number")

    with closing(sqlite3.connect(keel.db)) as conn, conn:
        edited = conn.execute(
            "UPDATE events SET data = replace(data, '\"output\":32', '\"output\":33') "
            "WHERE run_id = ? AND seq = ?",
            (ran.run_id, target),
        ).rowcount
    assert edited == 1

    verified = keel("verify", ran.run_id)
    assert verified.returncode == 1
    assert f"run {ran.run_id}: the history was altered" in verified.stderr
    assert f"event {target + 1}: previous-hash does not match event {target}" in verified.stderr


# --- 14. choosing the workflow ------------------------------------------------------------------


def test_file_workflow_module_and_yaml_targets(keel: Keel) -> None:
    several = keel("run", str(FLOWS), "-i", "name=Ada")
    assert several.returncode == 1
    assert "defines several workflows" in several.stderr
    assert "greeting" in several.stderr
    assert "sequential" in several.stderr
    unimportable = keel("run", "no_such_package.flows:main")
    assert unimportable.returncode == 1
    assert "neither a file nor an importable module" in unimportable.stderr

    by_file = keel.run(flow("greeting"), "-i", "name=Ada", "-q")
    assert by_file.output == {"result": "hello Ada!"}
    by_module = keel.run(f"{MODULE}:sequential", "--input", '{"text": "5"}', "-q")
    assert by_module.output == {"result": "total=15"}
    by_yaml = keel.run(str(YAML_FLOW), "--input", '{"text": "8"}', "-q")
    assert by_yaml.output == {"value": 18}

    records = {run["workflow"]: run for run in keel.runs()}
    assert records["greeting"]["origin"] == f"{FLOWS}:greeting"
    assert records["sequential"]["origin"] == f"{MODULE}:sequential"
    assert records["yaml_chain"]["origin"] == str(YAML_FLOW)
    assert [run["id"] for run in keel.runs("--workflow", "sequential")] == [by_module.run_id]
    events = keel.history(by_yaml.run_id)
    assert [event["node"] for event in find(events, "node_succeeded")] == ["parse", "plus"]
    assert events[-1] == {**events[-1], "kind": "run_completed", "output": {"value": 18}}
