"""What a firing starts is decided before anything starts (``prepare``), and each source
applies its policy to the workflows that refuse: an event is taken by every workflow or
by none (whatever the order they were deployed in); a run's end, which no caller waits
for, starts the workflows that take it and logs the others."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from keel.errors import InputError
from keel.runtime.operations.control import cancel_run, start_run
from keel.runtime.runs import RunCache
from keel.runtime.triggers.completion import fire_completion
from keel.runtime.triggers.events import emit
from keel.runtime.triggers.firing import Armed, Offer, active, prepare
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store.sqlite import SQLiteStore
from tests.unit.outbox_rows import outbox
from tests.unit.test_completion_triggers import upstream

#: an input schema that takes ``amount`` up to 100
SMALL = {"type": "object", "properties": {"amount": {"type": "number", "maximum": 100}},
         "required": ["amount"]}  # fmt: skip


def listening(
    name: str, trigger: dict[str, Any], schema: dict[str, Any] | None = None
) -> WorkflowSpec:
    return parse_spec({"name": name, "nodes": [{"id": "a", "task": "m:f"}],
                       "input_schema": schema or {}, "triggers": [trigger]})  # fmt: skip


def deploy_in_order(store: SQLiteStore, specs: list[WorkflowSpec]) -> None:
    for at, spec in enumerate(specs):
        store.deploy([(spec, None)], 1.0 + at)


def test_prepare_checks_every_workflow_and_starts_nothing(store: SQLiteStore) -> None:
    event = {"kind": "event", "event": "order"}
    deploy_in_order(
        store,
        [
            listening("small", event, SMALL),
            listening("any", event),
            listening("twice", {**event, "filter": "event.amount > 1"}),
            listening("broken", {**event, "input": {"n": "event.nope"}}),
        ],
    )
    offers = [
        Offer(armed, {"amount": 500}, {"amount": 500})
        for armed in active(store, RunCache(store, capacity=0), "event")
    ]
    # a second trigger of a workflow that one of its triggers took the event for
    twice = listening("twice", {**event, "input": {"first": "event.amount"}})
    offers.append(Offer(Armed(twice, 1, twice.triggers[0]), {"amount": 500}, None))
    batch = prepare(offers, "event")
    assert sorted((spec.name, run_input) for spec, run_input in batch.runs) == [
        ("any", {"amount": 500}), ("twice", {"amount": 500})]  # fmt: skip
    refused = {r.workflow: r.reason for r in batch.refused}
    assert sorted(refused) == ["broken", "small"]
    assert refused["broken"].endswith("event has no field 'nope'")
    assert refused["small"].startswith("the input of workflow 'small' does not match")
    assert store.list_runs() == []


@pytest.mark.parametrize("small_first", [True, False])
def test_an_event_one_workflow_refuses_starts_no_run(store: SQLiteStore, small_first: bool) -> None:
    event = {"kind": "event", "event": "order"}
    specs = [listening("small", event, SMALL), listening("large", event)]
    deploy_in_order(store, specs if small_first else specs[::-1])
    with pytest.raises(InputError) as refused:
        emit(store, "order", {"amount": 500}, "m-1")
    assert str(refused.value).startswith(
        "event 'order' (message m-1) was refused by workflow 'small': the input of workflow "
        "'small' does not match its schema"
    )
    assert store.list_runs() == []
    # the data corrected, the same message id starts both
    taken = emit(store, "order", {"amount": 50}, "m-1")
    assert sorted(e.workflow for e in taken) == ["large", "small"]
    assert all(e.started for e in taken)


@pytest.mark.parametrize("strict_first", [True, False])
def test_a_run_end_one_workflow_refuses_starts_the_others_and_logs_it(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture, strict_first: bool
) -> None:
    trigger = {"kind": "completion", "after": "up", "status": ["cancelled"]}
    needs_total = {"type": "object", "required": ["total"]}
    specs = [listening("strict", trigger, needs_total), listening("plain", trigger)]
    deploy_in_order(store, [upstream(), *(specs if strict_first else specs[::-1])])
    record = start_run(store, upstream(), {})
    cancel_run(store, record.id, by="ops")  # ended without output: the input is {}
    (item,) = outbox(store, record.id)
    with caplog.at_level(logging.WARNING, logger="keel.triggers"):
        assert fire_completion(store, item) is None
    started = [r for r in store.list_runs() if r.workflow != "up"]
    assert [(r.workflow, r.input) for r in started] == [("plain", {})]
    said = f"the completion trigger of strict after run {record.id} started nothing: the input"
    assert any(m.startswith(f"{said} of workflow 'strict'") for m in caplog.messages)
