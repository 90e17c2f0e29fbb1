"""A trigger's firing starts one run whoever fires it and however often; the run says
what started it; filters and input mappings read the trigger's variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import InputError
from keel.runtime.runs import RunCache
from keel.runtime.triggers.firing import Firing, active, fire, mapped_input, matches
from keel.spec import parse_spec
from keel.spec.triggers import EventTrigger
from keel.store.sqlite import SQLiteStore

SPEC = {
    "name": "nightly",
    "input_schema": {"type": "object", "properties": {"day": {"type": "string"}},
                     "additionalProperties": False},
    "nodes": [{"id": "a", "task": "m:f"}],
    "triggers": [{"kind": "schedule", "cron": "0 2 * * *", "name": "nightly"},
                 {"kind": "event", "event": "order", "filter": "event.total > 10",
                  "input": {"day": "event.day"}}],
}  # fmt: skip


def test_a_firing_starts_one_run_and_the_run_says_what_started_it(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    spec = parse_spec(SPEC)
    firing = Firing("schedule", "nightly", "2026-12-06T02:00:00+00:00")

    first, started = fire(store, spec, {"day": "sun"}, firing)
    again, started_again = fire(store, spec, {"day": "sun"}, firing)
    other, _ = fire(store, spec, {"day": "sun"}, Firing("schedule", "nightly", "next"))

    assert (started, started_again) == (True, False)
    assert first.id == again.id != other.id
    assert first.started_by == "schedule:nightly"
    (event, *_) = store.history(first.id)
    assert event.event.trigger == firing.document()  # type: ignore[attr-defined]
    with pytest.raises(InputError):  # the workflow refuses it: nothing starts
        fire(store, spec, {"day": 3}, Firing("schedule", "nightly", "bad"))
    assert len(store.list_runs()) == 2
    store.close()


def test_only_deployed_current_versions_have_live_triggers(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    plans = RunCache(store, capacity=0)
    assert active(store, plans) == []
    spec = parse_spec(SPEC)
    store.deploy([(spec, None)], 1.0)
    assert [(a.spec.name, a.trigger.kind) for a in active(store, plans)] == [
        ("nightly", "schedule"), ("nightly", "event")]  # fmt: skip
    assert [a.index for a in active(store, plans, "event")] == [1]
    store.close()


def test_a_filter_and_an_input_mapping_read_the_triggers_variable() -> None:
    trigger = EventTrigger(event="order", filter="event.total > 10", input={"day": "event.day"})
    assert matches(trigger, "event", {"total": 11, "day": "mon"})
    assert not matches(trigger, "event", {"total": 3})
    assert mapped_input(trigger, "event", {"total": 11, "day": "mon"}, None) == {"day": "mon"}
    assert mapped_input(EventTrigger(event="x"), "event", {"a": 1}, {"a": 1}) == {"a": 1}


def test_an_input_mapping_is_checked_against_the_input_schema() -> None:
    from keel.errors import SpecError
    from keel.spec.validate import parse_and_validate

    schema = {**SPEC["input_schema"], "required": ["day"]}  # type: ignore[dict-item]
    trigger = {"kind": "event", "event": "order", "input": {"dya": "event.day"}}
    data = {**SPEC, "input_schema": schema, "triggers": [trigger]}
    with pytest.raises(SpecError) as found:
        parse_and_validate(data)
    said = str(found.value)
    assert "no field 'dya'" in said
    assert "'day' is required" in said
