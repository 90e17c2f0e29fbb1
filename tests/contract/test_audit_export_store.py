"""The audit export reads every backend the same way: the selection (named runs by
prefix, a workflow, a creation window) through the store's run list a page at a time,
each run's events exactly as stored, its LLM ledger; and the export verifies offline."""

from __future__ import annotations

import json

import pytest

from keel.audit import export as export_module
from keel.audit.export import Selection, export_csv, export_jsonl, resolved
from keel.errors import RunNotFoundError
from keel.store import Store
from keel.store.model_calls import CallEnded, CallSent
from tests.audit.exports import EXPORTED_AT, lines_of, verified
from tests.contract.conftest import T0, Driver, finished_three_node_run, roots_spec


def seeded(store: Store) -> None:
    """Two finished ``three`` runs at T0 (one with two LLM calls) and three ``roots``
    runs started at T0 + 10, + 20, + 30."""
    finished_three_node_run(store, "three-a")
    finished_three_node_run(store, "three-b")
    for number, call in enumerate(("c1", "c2")):
        store.send_call(CallSent(
            id=call, run_id="three-a", workflow="three", node="b", item=None, attempt=1,
            kind="model", fingerprint=f"fp-{call}", provider="openai", model="gpt-x",
            request={"messages": [{"role": "user", "content": f"ask {number}"}]},
            reserved=10, at=T0 + number,
        ))  # fmt: skip
    store.end_call(CallEnded("c1", "answered", cost=7, at=T0 + 2, response={"text": "yes"}))
    for number in (1, 2, 3):
        driver = Driver(store, roots_spec("x"), f"roots-{number}")
        driver.now = T0 + 10 * number
        driver.start()


def exported(store: Store, selection: Selection) -> list[dict[str, object]]:
    text = "".join(export_jsonl(store, resolved(store, selection), exported_at=EXPORTED_AT,
                                keel_version="test"))  # fmt: skip
    report = verified(text.encode())
    assert report is not None
    assert report.intact, report.problems
    return [json.loads(line) for line in lines_of(text.encode())]


def run_ids(lines: list[dict[str, object]]) -> list[object]:
    return [line["run_id"] for line in lines if line["type"] == "run"]


def test_every_run_is_exported_with_its_events_and_ledger(store: Store) -> None:
    seeded(store)
    lines = exported(store, Selection())
    assert sorted(map(str, run_ids(lines))) == ["roots-1", "roots-2", "roots-3", "three-a",
                                                "three-b"]  # fmt: skip
    for run_id in run_ids(lines):
        events = [line for line in lines if line["type"] == "event" and line["run_id"] == run_id]
        assert [(e["seq"], e["at"], e["payload"], e["prev_hash"]) for e in events] == [
            (link.seq, link.at, link.payload, link.prev_hash)
            for link in store.chain_links(str(run_id))
        ]
    calls = [line for line in lines if line["type"] == "model_call"]
    assert [(c["run_id"], c["id"], c["state"], c["cost"]) for c in calls] == [
        ("three-a", "c1", "answered", 7), ("three-a", "c2", "sent", 0)]  # fmt: skip
    assert calls[0]["response"] == {"text": "yes"}


def test_a_selection_names_runs_a_workflow_or_a_window(store: Store) -> None:
    seeded(store)
    assert run_ids(exported(store, Selection(runs=("roots-2", "three-b")))) == [
        "roots-2", "three-b"]  # fmt: skip
    assert sorted(map(str, run_ids(exported(store, Selection(workflow="three"))))) == [
        "three-a", "three-b"]  # fmt: skip
    window = Selection(since=T0 + 10, until=T0 + 30)  # since inclusive, until exclusive
    assert run_ids(exported(store, window)) == ["roots-2", "roots-1"]  # newest first
    both = Selection(runs=("roots-1", "three-a"), workflow="roots")
    assert run_ids(exported(store, both)) == ["roots-1"]
    header = exported(store, window)[0]
    assert header["selection"] == {"runs": [], "workflow": None, "since": T0 + 10,
                                   "since_iso": "2023-11-14T22:13:30.000000Z",
                                   "until": T0 + 30,
                                   "until_iso": "2023-11-14T22:13:50.000000Z"}  # fmt: skip


def test_runs_are_read_a_page_at_a_time_each_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded(store)
    monkeypatch.setattr(export_module, "PAGE", 2)
    ids = run_ids(exported(store, Selection()))
    assert len(ids) == len(set(ids)) == 5


def test_a_run_that_is_not_there_fails_before_anything_is_written(store: Store) -> None:
    seeded(store)
    with pytest.raises(RunNotFoundError):
        resolved(store, Selection(runs=("three-a", "nothing")))
    assert resolved(store, Selection(runs=("three-a", "three-a"))).runs == ("three-a",)


def test_the_csv_export_reads_the_same_events(store: Store) -> None:
    seeded(store)
    rows = list(export_csv(store, resolved(store, Selection(runs=("three-a",)))))
    assert len(rows) == 1 + store.get_run("three-a").last_seq
