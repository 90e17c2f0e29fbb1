"""Histories recorded by earlier versions of keel still read, replay and verify.

Each file in ``tests/fixtures/histories`` holds runs as a store held them (recorded by
``tests/fixtures/histories/record.py`` at the version it names): the definition, the
run's row, and every event as stored text with its hash links. A run's history is kept
for good, so whatever the events become, these must still load through ``from_data``,
replay through ``apply`` to the run the store recorded, and verify: the hash chain is
over the stored text, which nothing rewrites.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keel.audit.approvals import ApprovalCheck
from keel.audit.signing import PublicKey
from keel.engine import EVENT_TYPES, RunState, apply, compile_plan, decide, from_data, node_of
from keel.engine.events import to_data
from keel.runtime.views.report import run_report
from keel.spec import parse_spec
from keel.store.chain import ChainLink, canonical_json, verify_chain
from keel.store.records import StoredEvent

FOLDER = Path(__file__).parents[1] / "fixtures" / "histories"
FILES = sorted(FOLDER.glob("*.json"))
HISTORIES = [
    pytest.param(history, id=f"{path.stem}-{history['spec']['name']}-{history['run_id'][-4:]}")
    for path in FILES
    for history in json.loads(path.read_text())["histories"]
]


def links_of(history: dict[str, Any]) -> list[ChainLink]:
    return [
        ChainLink(e["seq"], e["at"], e["payload"], e["prev_hash"], e["kind"], e["node"])
        for e in history["events"]
    ]


def stored_of(history: dict[str, Any]) -> list[StoredEvent]:
    """The events as the store gives them back: read from the stored text."""
    run_id = history["run_id"]
    return [
        StoredEvent(run_id, e["seq"], e["at"], from_data(json.loads(e["payload"])), e["prev_hash"])
        for e in history["events"]
    ]


def test_there_are_recorded_histories_with_every_kind_of_event() -> None:
    assert FILES, f"no recorded histories in {FOLDER}"
    kinds = {e["kind"] for history in HISTORIES for e in history.values[0]["events"]}
    assert kinds == set(EVENT_TYPES), "record a history with the new kind of event"


@pytest.mark.parametrize("history", HISTORIES)
def test_a_recorded_history_verifies_from_its_stored_text(history: dict[str, Any]) -> None:
    report = verify_chain(
        history["run_id"], links_of(history), history["last_seq"], history["head_hash"]
    )
    assert report.problems == ()
    assert report.head_hash == history["head_hash"]


@pytest.mark.parametrize("history", HISTORIES)
def test_a_recorded_event_reads_as_the_event_it_was(history: dict[str, Any]) -> None:
    for stored in history["events"]:
        data = json.loads(stored["payload"])
        event = from_data(data)
        assert event.kind == stored["kind"]
        assert node_of(event) == stored["node"]  # the column the store wrote beside it
        # same shape: the event written again is the text that was stored (and hashed)
        assert canonical_json(to_data(event)) == stored["payload"]


@pytest.mark.parametrize("history", HISTORIES)
def test_a_recorded_history_replays_to_the_run_it_recorded(history: dict[str, Any]) -> None:
    spec = parse_spec(history["spec"])
    assert spec.version == history["spec_version"]
    plan = compile_plan(spec)
    state = RunState.new(plan, history["run_id"])
    stored = stored_of(history)
    for event in stored:
        apply(state, event.event, event.seq)

    assert (state.status.value, state.output) == (history["status"], history["output"])
    assert state.reason == history["reason"]
    assert state.late == history.get("late", False)  # recorded since runs can be late
    assert state.last_seq == history["last_seq"]
    assert decide(state, stored[-1].at) == []  # an ended run has nothing left to decide
    report = run_report(plan, stored)  # what ``keel show`` prints of it
    # it ended at its last event, not at a fork of it recorded later
    ended = [event for event in stored if event.event.kind != "run_forked"][-1].at
    assert (report.started_at, report.ended_at) == (stored[0].at, ended)


def _recorded_keys() -> dict[str, PublicKey]:
    keys = [k for path in FILES for k in json.loads(path.read_text()).get("audit_keys", [])]
    return {k["key_id"]: PublicKey.from_text(k["public_key"]) for k in keys}


def test_signed_approvals_of_recorded_histories_still_verify() -> None:
    """What an approval's signature covers (``approval_signed_data``) never changes: a
    change would fail every signature made before it."""
    check = ApprovalCheck()
    for history in HISTORIES:
        check.add(history.values[0]["run_id"], links_of(history.values[0]), _recorded_keys())
    assert check.problems == []
    assert check.signed >= 1, "record a history with a signed approval"
