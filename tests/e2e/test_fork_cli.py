"""End to end, in real ``keel`` processes: the saga example fails at ``book_car`` (no
cars in Reykjavik) and compensates; ``keel fork --from book_car`` with the city changed
reports what runs again first, refuses to start without ``--yes`` when it cannot ask,
then runs the fork here: the flight and hotel are reused (never started again), the car
is booked, and both runs show the link."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e import test_run_cli
from tests.e2e.test_run_cli import COMMAND_TIMEOUT, Keel, find


@pytest.fixture
def keel(tmp_path: Path) -> Keel:
    return test_run_cli.keel.__wrapped__(tmp_path)  # type: ignore[attr-defined, no-any-return]


EXAMPLE = str(Path(__file__).parents[2] / "examples" / "trip.py")


def without_terminal(keel: Keel, *args: str) -> subprocess.CompletedProcess[str]:
    """``keel ARGS`` with nothing to read from: it cannot ask anyone."""
    return subprocess.run([sys.executable, "-m", "keel", *args], cwd=keel.cwd, env=keel.env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, check=False)  # fmt: skip


def failed_trip(keel: Keel) -> str:
    ran = keel.run(EXAMPLE, "-i", "traveller=Ada", "-i", "city=Reykjavik")
    assert ran.proc.returncode == 1
    return ran.run_id


def test_a_failed_saga_forked_from_book_car_books_only_the_car(keel: Keel) -> None:
    source = failed_trip(keel)
    fork = ["fork", source[:8], "--from", "book_car", "--set", "input.city=Lisbon"]

    refused = without_terminal(keel, *fork)
    assert refused.returncode == 1
    said = " ".join(refused.stderr.split())
    assert "nothing was started: pass --yes" in said
    assert "1 node runs again, with side effects: book_car" in said
    assert len(keel.runs()) == 1  # no fork was recorded
    # the report came first: book_car runs again, flight and hotel are reused, undone
    report = " ".join(refused.stderr.split())
    assert "↻ book_car runs again forked from here ! side effect" in report
    assert "= book_flight reused" in report
    assert "= book_hotel reused" in report
    assert "undid it (compensate:book_flight)" in report
    assert 'input.city: "Reykjavik" → "Lisbon"' in report

    ran = without_terminal(keel, *fork, "--yes")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["car"]["reference"].startswith("C-")
    new = keel.newest_run_id()
    assert new != source
    events = keel.history(new)
    # flight and hotel were not executed again: only the car started, once
    assert [e["node"] for e in find(events, "node_started")] == ["book_car"]
    assert [e["node"] for e in find(events, "node_scheduled")] == ["book_car"]
    reused = find(events, "node_reused")
    assert [(e["node"], e["from_run"], e["compensated"]) for e in reused] == [
        ("book_flight", source, True), ("book_hotel", source, True)]  # fmt: skip
    assert events[0]["fork"] == {"run": source, "node": "book_car",
                                 "version": events[0]["spec_version"]}  # fmt: skip
    assert events[0]["input"]["city"] == "Lisbon"
    assert events[-1]["kind"] == "run_completed"

    shown = keel.show(new)
    assert shown["status"] == "succeeded"
    assert shown["forked_from"] == {"run": source, "node": "book_car",
                                    "version": shown["spec_version"]}  # fmt: skip
    before = keel.show(source)
    assert before["status"] == "failed"
    assert [(f["run_id"], f["node"]) for f in before["forks"]] == [(new, "book_car")]
    assert keel.history(source)[-1]["kind"] == "run_forked"
    text = " ".join(keel.ok("show", source[:8]).stdout.split())
    assert f"forked into run {new} from node book_car" in text
    text = " ".join(keel.ok("show", new[:8]).stdout.split())
    assert f"fork of run {source} from node book_car" in text
    assert "reused from run" in text
    assert "intact" in keel.ok("verify", source, new).stdout

    # keel diff shows the changed node, and the reused ones as they were
    diff = json.loads(keel.ok("diff", source, new, "--json").stdout)
    nodes = {c["parts"][1] for c in diff["changes"] if c["parts"][0] == "nodes"}
    assert nodes == {"book_car"}  # flight and hotel: the same bookings, reused
    assert "compensate:book_flight" in diff["only_in_a"]  # the source undid them
    text = keel.ok("diff", source[:8], new[:8]).stdout
    assert "book_car" in text
    assert "Lisbon" in text


def test_a_dry_run_records_nothing_and_json_is_one_document(keel: Keel) -> None:
    source = failed_trip(keel)
    dry = keel.ok("fork", source, "--from", "book_hotel", "--dry-run", "--json")
    doc = json.loads(dry.stdout)
    assert doc["run_id"] is None
    assert [(n["node"], n["action"]) for n in doc["nodes"]] == [
        ("book_flight", "reuse"), ("book_hotel", "run"), ("book_car", "run")]  # fmt: skip
    assert len(keel.runs()) == 1

    done = without_terminal(keel, "fork", source, "--from", "book_car", "--yes", "--json",
                            "--set", 'input.city="Oslo"')  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)  # the fork, its status and output: nothing else
    assert (doc["status"], doc["source"]) == ("succeeded", source)
    assert doc["output"]["car"]["kind"] == "car"
    assert doc["input"]["city"] == "Oslo"


def test_bad_forks_are_refused_with_what_was_wrong(keel: Keel) -> None:
    source = failed_trip(keel)

    def refused(*args: str) -> str:
        result = without_terminal(keel, "fork", source, *args, "--yes")
        assert result.returncode != 0, result.stdout
        assert "Traceback" not in result.stderr
        return " ".join(result.stderr.split())

    assert "has no node 'book_boat' (nodes: book_flight, book_hotel, book_car)" in refused(
        "--from", "book_boat")  # fmt: skip
    assert "cannot set the output of node 'book_car': it runs again" in refused(
        "--from", "book_hotel", "--set", 'nodes.book_car.output={"kind": "car"}')  # fmt: skip
    assert "cannot set 'city'" in refused("--from", "book_car", "--set", "city=Lisbon")
    assert "input.city" in refused("--from", "book_car", "--set", "input.city=3")
    assert "--set nodes.book_flight.output is not valid JSON" in refused(
        "--from", "book_car", "--set", "nodes.book_flight.output=oops")  # fmt: skip
    assert "give at least 6 characters" in refused("--from", "book_car", "--version", "ab")
    # checked against the task's return type, in the code the run recorded (--yes)
    assert "does not fit the return type dict[str, Any] of trip:book_hotel" in refused(
        "--from", "book_car", "--set", 'nodes.book_hotel.output="x"')  # fmt: skip
    assert len(keel.runs()) == 1


def test_a_dry_runs_plan_is_its_output_and_code_is_named_with_code(keel: Keel) -> None:
    """A dry run prints its plan on stdout (``> plan.txt`` keeps it). An output given
    is checked against the task's type, in code the user names (``--code``) or confirms
    (``--yes``): without either, the refusal says so for keel fork, not keel resume."""
    source = failed_trip(keel)
    given = ["--set", 'nodes.book_hotel.output={"kind": 1}', "--dry-run"]

    refused = without_terminal(keel, "fork", source[:8], "--from", "book_car", *given)
    assert refused.returncode == 1
    said = " ".join(refused.stderr.split())
    assert "keel resume" not in said
    assert f"give it to keel fork as --code {EXAMPLE}" in said
    assert "(or --yes to load what runs recorded)" in said

    for load in (["--code", EXAMPLE], ["--yes"]):
        dry = without_terminal(keel, "fork", source[:8], "--from", "book_car", *given, *load)
        assert dry.returncode == 0, dry.stderr
        assert dry.stderr == ""
        plan = " ".join(dry.stdout.split())
        assert plan.startswith(f"fork of run {source} (trip, failed) from book_car")
        assert "↻ book_car runs again" in plan
        assert "= book_hotel set" in plan
    bad = without_terminal(keel, "fork", source[:8], "--from", "book_car", "--code",
                           "missing.py", *given)  # fmt: skip
    assert bad.returncode == 1
    assert "missing.py" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert len(keel.runs()) == 1
