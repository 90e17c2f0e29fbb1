"""``keel versions`` and ``keel diff`` in real ``python -m keel`` processes on SQLite: a
trip workflow run and deployed, then changed (a check added before the flight, the car
booking retried) and run again; the versions with their deploys and runs, the diff of
the two versions (text and graph) and of two runs (the changed node down to the field),
at 80 columns and piped. Arguments that name nothing or several things: one line, exit
status 2, no traceback."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from keel.runtime.operations.control import start_run
from keel.store.sqlite import SQLiteStore
from tests.e2e import test_run_cli
from tests.e2e.test_run_cli import Keel

WIDTH = 80

TRIP = """
import keel


@keel.task
def check(who: str) -> bool:
    return True


@keel.task
def book_flight(who: str) -> str:
    return "F-" + who


@keel.task
def book_hotel(flight: str) -> str:
    return "H-1"


@keel.task{car_options}
def book_car(size: str, hotel: str) -> dict:
    return {{"reference": "C-1" if size == "compact" else "C-2", "size": size}}


@keel.workflow
def trip(who: str, size: str) -> dict:
    {body}
"""
V1_BODY = "return book_car(size, book_hotel(book_flight(who)))"
V2_BODY = "ok = check(who)\n    return book_car(size, book_hotel(book_flight(who, after=[ok])))"


def keel_in(folder: Path) -> Keel:
    """``keel`` on the database in ``folder``, piped with ``COLUMNS=80``."""
    made: Keel = test_run_cli.keel.__wrapped__(folder)  # type: ignore[attr-defined]
    return dataclasses.replace(made, env={**made.env, "COLUMNS": str(WIDTH)})


@pytest.fixture(scope="module")
def keel(tmp_path_factory: pytest.TempPathFactory) -> Keel:
    """One database for the module's tests, which only read it (the runs take a while)."""
    return keel_in(tmp_path_factory.mktemp("versions"))


def write_trip(path: Path, version: int) -> None:
    body, options = (V1_BODY, "") if version == 1 else (V2_BODY, "(retries=2)")
    path.write_text(TRIP.format(body=body, car_options=options))


def loaded(keel: Keel, *args: str) -> Any:
    return json.loads(keel.ok(*args, "--json").stdout)


@dataclasses.dataclass
class Trips:
    v1: str
    v2: str
    compact: str
    suv: str
    later: str


@pytest.fixture(scope="module")
def trips(keel: Keel) -> Trips:
    """Two runs and a deploy of the first version, one run of the second (not deployed)."""
    flows = keel.cwd / "trip.py"
    write_trip(flows, 1)
    compact = keel.run(f"{flows}:trip", "-i", "who=ann", "-i", "size=compact").run_id
    keel.ok("deploy", str(flows), "--by", "alice")
    suv = keel.run(f"{flows}:trip", "-i", "who=ann", "-i", "size=suv").run_id
    write_trip(flows, 2)
    later = keel.run(f"{flows}:trip", "-i", "who=bob", "-i", "size=compact").run_id
    runs = {r["id"]: r["spec_version"] for r in keel.runs()}
    assert runs[compact] == runs[suv] != runs[later]
    return Trips(runs[compact], runs[later], compact, suv, later)


def fits(text: str) -> str:
    assert text.strip()
    assert max(len(line) for line in text.splitlines()) <= WIDTH, text
    return text


def refused(keel: Keel, *args: str) -> str:
    """A command refused as a usage error: exit status 2, no traceback, no line wider
    than 80 columns (one line if it fits); its words as one line."""
    result = keel(*args)
    assert result.returncode == 2, f"keel {' '.join(args)}: {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines, result.stderr
    assert all(len(line) <= 80 for line in lines), result.stderr
    assert all(line.startswith("  ") for line in lines[1:]), result.stderr
    return " ".join(result.stderr.split())


def test_versions_lists_deployed_and_run_only_versions_newest_first(
    keel: Keel, trips: Trips
) -> None:
    doc = loaded(keel, "versions", "trip")
    assert doc["current_version"] == trips.v1
    newest, deployed = doc["versions"]
    assert (newest["version"], newest["seen"], newest["runs"]) == (trips.v2, "run", 1)
    assert (deployed["version"], deployed["seen"], deployed["runs"]) == (trips.v1, "deployed", 2)
    assert deployed["current"] is True
    assert [d["deployed_by"] for d in deployed["deployments"]] == ["alice"]
    assert deployed["first_run_at"] < deployed["last_run_at"] < newest["first_run_at"]

    text = fits(keel.ok("versions", "trip").stdout)
    lines = text.splitlines()
    assert lines[0] == f"trip: 2 versions, current {trips.v1[:12]}"
    assert lines[2].split()[:4] == [trips.v2[:12], "runs", "only", "1"]
    assert lines[3].split()[:2] == [trips.v1[:12], "*"]
    assert "alice" in lines[3].split()
    assert lines[-1] == "* current (deployed last)"


def test_diff_of_two_versions_as_text_and_as_a_graph(keel: Keel, trips: Trips) -> None:
    text = fits(keel.ok("diff", trips.v1[:10], f"trip@{trips.v2[:8]}").stdout)
    assert text.splitlines()[:2] == [f"a  version {trips.v1[:12]}  trip",
                                     f"b  version {trips.v2[:12]}  trip"]  # fmt: skip
    assert "nodes added (1)\n  + check" in text
    assert "  ~ book_flight  after\n" in text
    assert '      after: [] -> ["check"]' in text
    assert "  ~ book_car     retry\n" in text
    assert "      retry.max_attempts: (not set) -> 3" in text
    assert "edges added (1)\n  + check -> book_flight" in text

    doc = loaded(keel, "diff", f"version:{trips.v1[:10]}", trips.v2)
    assert doc["kind"] == "versions"
    states = {n["id"]: n["state"] for n in doc["nodes"]}
    assert states == {"check": "added", "book_flight": "changed", "book_hotel": "same",
                      "book_car": "changed"}  # fmt: skip

    mermaid = keel.ok("diff", trips.v1[:10], trips.v2[:10], "--graph", "mermaid").stdout
    assert mermaid.startswith("flowchart TD\n")
    assert "    class check added\n" in mermaid
    assert "    class book_flight,book_car changed\n" in mermaid
    dot = keel.ok("diff", trips.v1[:10], trips.v2[:10], "--graph", "dot").stdout
    assert '"check" -> "book_flight" [color="#2f8a1f"];' in dot


def test_diff_of_two_runs_shows_the_changed_node(keel: Keel, trips: Trips) -> None:
    text = fits(keel.ok("diff", trips.compact[:8], trips.suv[:8]).stdout)
    assert text.splitlines() == [
        f"a  run {trips.compact[:12]}  trip {trips.v1[:12]}  succeeded",
        f"b  run {trips.suv[:12]}  trip {trips.v1[:12]}  succeeded",
        '  input.size: "compact" -> "suv"',
        '  output.result.reference: "C-1" -> "C-2"',
        '  output.result.size: "compact" -> "suv"',
        '  nodes.book_car.input.size: "compact" -> "suv"',
        '  nodes.book_car.output.reference: "C-1" -> "C-2"',
        '  nodes.book_car.output.size: "compact" -> "suv"',
    ]
    doc = loaded(keel, "diff", f"run:{trips.compact}", trips.suv)
    assert doc["changed_nodes"] == ["book_car"]

    across = loaded(keel, "diff", trips.compact, trips.later)  # across versions
    assert across["only_in_b"] == ["check"]
    assert {c["path"] for c in across["changes"]} >= {"version", "input.who",
                                                      "nodes.book_flight.input.who"}  # fmt: skip
    assert "no differences" in keel.ok("diff", trips.suv, trips.suv).stdout


def test_arguments_that_name_nothing_exit_2(keel: Keel, trips: Trips) -> None:
    said = refused(keel, "diff", "nothing", trips.compact)
    assert said == ("'nothing' is neither a run nor a stored version (see `keel runs` and "
                    "`keel versions WORKFLOW`)")  # fmt: skip
    assert refused(keel, "diff", "run:abcdef", trips.compact) == (
        "no run with id 'abcdef' (see `keel runs`)"
    )
    assert "keel diff compares two runs or two versions" in refused(
        keel, "diff", trips.compact, f"version:{trips.v1[:8]}"
    )
    assert refused(keel, "versions", "nothing").startswith(
        "no version of workflow 'nothing' is stored"
    )
    assert "unknown graph format 'png'" in refused(keel, "diff", "a", "b", "--graph", "png")
    assert "--graph draws two versions' graphs" in refused(
        keel, "diff", trips.compact, trips.suv, "--graph", "mermaid"
    )


def test_arguments_that_name_several_things_exit_2(
    keel: Keel, trips: Trips, tmp_path: Path
) -> None:
    # runs whose ids collide: with each other, and with a version's digits (on a copy of
    # the database: the other tests read the original)
    copied = keel_in(tmp_path)
    for suffix in ("", "-wal"):  # whatever the last process left in the log too
        if Path(f"{keel.db}{suffix}").exists():
            shutil.copyfile(f"{keel.db}{suffix}", f"{copied.db}{suffix}")
    keel = copied
    store = SQLiteStore(keel.db)
    try:
        spec = store.load_spec(trips.v1)
        start_run(store, spec, {"who": "x", "size": "compact"}, run_id="abc1" + "0" * 28)
        start_run(store, spec, {"who": "x", "size": "compact"}, run_id="abc2" + "0" * 28)
        start_run(store, spec, {"who": "x", "size": "compact"}, run_id=trips.v2[:9] + "0" * 23)
    finally:
        store.close()
    assert refused(keel, "diff", "abc", trips.compact) == (
        "'abc' matches several runs: give more characters"
    )
    digits = trips.v2[:9]
    assert refused(keel, "diff", digits, trips.v1) == (
        f"'{digits}' is both run {digits}000 (trip) and version {trips.v2[:12]} (trip): "
        f"write run:{digits} or version:{digits}"
    )
    assert loaded(keel, "diff", f"version:{digits}", trips.v1)["kind"] == "versions"
