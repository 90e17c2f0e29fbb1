"""A trigger's filter or input mapping that cannot be evaluated over what fired says
which trigger, which expression, and what it read that is not there; the triggers no
caller waits for (files, completions) log it and start nothing, as before."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from keel.errors import InputError
from keel.runtime.operations.control import start_run
from keel.runtime.triggers.files import FileWatcher
from keel.runtime.triggers.firing import mapped_input, matches
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.spec import parse_spec
from keel.spec.missing import missing_read
from keel.spec.triggers import CompletionTrigger, EventTrigger, FileTrigger, WebhookTrigger
from keel.store.sqlite import SQLiteStore
from tests.unit import runtime_tasks  # noqa: F401  (loaded, as a worker loads its code)
from tests.unit.test_completion_triggers import downstream, upstream


def failure(trigger: Any, variable: str, value: Any) -> str:
    """The error of the trigger's filter, or else of its input mapping."""
    try:
        if matches(trigger, variable, value):
            mapped_input(trigger, variable, value, None)
    except InputError as exc:
        return str(exc)
    raise AssertionError("the trigger fired")


@pytest.mark.parametrize(
    ("trigger", "value", "said"),
    [(WebhookTrigger(path="/orders", secret_env="S", input={"name": "event.body.id"}),
      {"body": {"x": 1}},
      "webhook /hooks/orders: input 'name' = event.body.id: event.body has no field 'id'"),
     (EventTrigger(event="order", filter="event.total > 1"), {"amount": 1},
      "event 'order': filter event.total > 1: event has no field 'total'"),
     (EventTrigger(event="order", input={"first": "event.items[2].sku"}), {"items": [{}, {}]},
      "event 'order': input 'first' = event.items[2].sku: event.items has 2 items: no [2]"),
     (EventTrigger(event="order", input={"n": "event.items[0].sku + 'x'"}), {"items": [3]},
      "event 'order': input 'n' = event.items[0].sku + 'x': event.items[0] is a number, "
      "not an object: no field 'sku'"),
     (EventTrigger(event="o", input={"n": "event['a-b'].c"}), {"a-b": {}},
      "event 'o': input 'n' = event['a-b'].c: event['a-b'] has no field 'c'"),
     (CompletionTrigger(after="up", input={"n": "run.output.total"}), {"output": None},
      "completion of 'up': input 'n' = run.output.total: run.output is null, not an object: "
      "no field 'total'")],
)  # fmt: skip
def test_a_failed_expression_names_the_trigger_the_expression_and_what_is_missing(
    trigger: Any, value: Any, said: str
) -> None:
    variable = "run" if isinstance(trigger, CompletionTrigger) else "event"
    assert failure(trigger, variable, value) == said


def test_only_a_read_that_failed_as_cel_did_is_blamed() -> None:
    # the branch CEL took read 'r', present; the failure is its type, which CEL words
    source = "has(event.q) ? event.q : event.r + 1"
    said = failure(EventTrigger(event="o", input={"n": source}), "event", {"r": "text"})
    assert "no field 'q'" not in said
    assert said.startswith(f"event 'o': input 'n' = {source}: cannot evaluate")
    # a key CEL missed is the one named, not another read missing one
    with pytest.raises(InputError, match=r"event has no field 'r'$"):
        mapped_input(EventTrigger(event="o", input={"n": source}), "event", {}, None)
    assert missing_read("event.a", {"event": {}}, None) is None  # no CEL error, no blame


def test_a_completion_whose_mapping_fails_logs_it_and_starts_nothing(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.deploy([(upstream(), None),
                  (downstream("mapped", input={"n": "run.output.missing"}), None)],
                 1.0)  # fmt: skip
    record = start_run(store, upstream(), {})
    worker = Worker(store, WorkerOptions(poll=0.01, late_grace=5))
    with caplog.at_level(logging.WARNING, logger="keel.triggers"):
        worker.run_until_finished([record.id])
        worker.flush_notifications(5)
    worker.close()

    assert [r.workflow for r in store.list_runs()] == ["up"]
    assert (f"the completion trigger of mapped after run {record.id} started nothing: "
            "completion of 'up': input 'n' = run.output.missing: run.output has no field "
            "'missing'") in caplog.messages  # fmt: skip


def test_a_file_whose_mapping_fails_logs_it_and_starts_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    trigger = FileTrigger(folder=str(folder), pattern="*.csv", input={"n": "event.owner"})
    spec = parse_spec({"name": "ingest", "nodes": [{"id": "a", "task": "m:f"}],
                       "triggers": [trigger.model_dump()]})  # fmt: skip
    store = SQLiteStore(tmp_path / "keel.db")
    store.deploy([(spec, None)], 1.0)
    now = [0.0]
    watcher = FileWatcher(store, monotonic=lambda: now[0])
    path = folder / "a.csv"
    path.write_text("1,2\n")
    with caplog.at_level(logging.WARNING, logger="keel.triggers"):
        watcher.look()
        now[0] += 1.0
        assert watcher.look() == 0
    assert store.list_runs() == []
    assert (
        f"file {path} started no run of ingest: file trigger on {folder / '*.csv'}: "
        "input 'n' = event.owner: event has no field 'owner'"
    ) in caplog.messages
    store.close()
