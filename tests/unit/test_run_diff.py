"""The diff of two runs, node by node: inputs, outputs, errors and skips, the run's own
input, status and output, and the nodes only one run has. Histories come from the
pure engine (``engine_sim``), read through ``run_report`` as ``keel show`` reads them."""

from __future__ import annotations

import random
from typing import Any

from keel.engine import compile_plan
from keel.runtime.views.report import RunReport, run_report
from keel.runtime.views.run_diff import diff_runs, run_diff_document
from keel.spec import parse_spec
from keel.spec.data_diff import MISSING, Change
from keel.spec.model import WorkflowSpec
from keel.store.records import RunRecord, StoredEvent
from tests.unit.engine_sim import BoomError, Simulation

SAGA = parse_spec({"name": "saga", "nodes": [
    {"id": "book_flight", "task": "m:flight", "args": {"who": "${{ input.who }}"}},
    {"id": "book_hotel", "task": "m:hotel", "args": {"f": "${{ nodes.book_flight.output }}"}},
    {"id": "book_car", "task": "m:car",
     "args": {"size": "${{ input.car }}", "h": "${{ nodes.book_hotel.output }}"}},
    {"id": "extras", "task": "m:extras", "after": ["book_car"], "when": "input.extras"},
], "outputs": {"car": "nodes.book_car.output"}})  # fmt: skip


def outcome(node: str, args: dict[str, Any], attempt: int) -> Any:
    if node == "book_car":
        if args["size"] == "van":
            raise BoomError("no van left")
        return {"reference": "C-1" if args["size"] == "compact" else "C-2", "size": args["size"]}
    return f"{node}-ok"


def ran(
    run_id: str, run_input: dict[str, Any], spec: WorkflowSpec = SAGA
) -> tuple[RunRecord, RunReport]:
    plan = compile_plan(spec)
    sim = Simulation.start(plan, run_input)
    sim.run(random.Random(1), outcome)
    history = [StoredEvent(run_id, seq, float(seq), event, "")
               for seq, event in enumerate(sim.history, 1)]  # fmt: skip
    report = run_report(plan, history)
    record = RunRecord(run_id, spec.name, spec.version, report.state.status.value, run_input,
                       report.state.output, report.state.reason, 0.0, 0.0, len(history), "",
                       None)  # fmt: skip
    return record, report


def diffed(a: tuple[RunRecord, RunReport], b: tuple[RunRecord, RunReport]) -> Any:
    return diff_runs(a[0], a[1], b[0], b[1])


def test_a_run_with_itself_and_a_twin_has_no_difference() -> None:
    one = ran("r1", {"who": "ann", "car": "compact", "extras": False})
    twin = ran("r2", {"who": "ann", "car": "compact", "extras": False})
    assert diffed(one, one).same
    diff = diffed(one, twin)  # other ids and times: still no difference
    assert diff.same
    assert run_diff_document(diff)["changes"] == []


def test_a_changed_input_shows_the_changed_node_down_to_the_field() -> None:
    diff = diffed(ran("r1", {"who": "ann", "car": "compact", "extras": False}),
                  ran("r2", {"who": "ann", "car": "suv", "extras": False}))  # fmt: skip

    found = {c.where: (c.before, c.after) for c in diff.changes}
    assert found == {
        "input.car": ("compact", "suv"),
        "output.car.reference": ("C-1", "C-2"),
        "output.car.size": ("compact", "suv"),
        "nodes.book_car.input.size": ("compact", "suv"),
        "nodes.book_car.output.reference": ("C-1", "C-2"),
        "nodes.book_car.output.size": ("compact", "suv"),
    }
    assert diff.changed_nodes == ["book_car"]  # flight and hotel did the same


def test_a_failed_node_and_a_skipped_one_show_their_error_and_reason() -> None:
    failed = ran("r1", {"who": "ann", "car": "van", "extras": True})
    fixed = ran("r2", {"who": "ann", "car": "compact", "extras": False})
    diff = diffed(failed, fixed)
    found = {c.where: (c.before, c.after) for c in diff.changes}

    assert found["status"] == ("failed", "succeeded")
    assert found["nodes.book_car.status"] == ("failed", "succeeded")
    assert found["nodes.book_car.error"] == ({"type": "Boom", "message": "no van left"}, None)
    assert found["nodes.book_car.output"] == (None, {"reference": "C-1", "size": "compact"})
    assert found["nodes.extras.status"] == ("not_started", "skipped")
    assert found["nodes.extras.reason"][0] is None
    assert "input.extras" in found["nodes.extras.reason"][1]
    assert diff.changed_nodes == ["book_car", "extras"]


def test_nodes_only_one_run_has_are_listed_not_walked() -> None:
    grown = parse_spec({**SAGA.model_dump(mode="json", exclude_defaults=True),
                        "nodes": [*SAGA.model_dump(mode="json", exclude_defaults=True)["nodes"],
                                  {"id": "invoice", "task": "m:invoice"}]})  # fmt: skip
    old = ran("r1", {"who": "ann", "car": "compact", "extras": False})
    new = ran("r2", {"who": "ann", "car": "compact", "extras": False}, grown)
    diff = diffed(old, new)

    assert diff.only_a == ()
    assert diff.only_b == ("invoice",)
    assert [c.where for c in diff.changes] == ["version"]
    doc = run_diff_document(diff)
    assert doc["only_in_b"] == ["invoice"]
    assert doc["a"]["run_id"] == "r1"
    assert doc["changes"] == [{"path": "version", "parts": ["version"], "change": "changed",
                               "a": SAGA.version, "b": grown.version}]  # fmt: skip


def test_a_key_one_output_lacks_is_absent_not_null() -> None:
    plain = {"who": "ann", "car": "compact", "extras": False}
    diff = diffed(ran("r1", plain), ran("r2", {**plain, "note": "x"}))
    assert diff.changes == (Change(("input", "note"), MISSING, "x"),)
    assert run_diff_document(diff)["changes"][0] == {
        "path": "input.note", "parts": ["input", "note"], "change": "added", "b": "x"}  # fmt: skip
