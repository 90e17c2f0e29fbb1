"""Replaying recorded histories against definitions (``keel.engine.replay``,
``keel.testing.replay``) and telling them as a story (``keel.runtime.views.story``).

Runs are recorded for real: started on SQLite and executed by the worker. A history
replays clean against the definition it was recorded with; against a changed one, the
first decision that differs is named, with what changed: a node added before a recorded
node, a condition changed, a node removed, arguments changed. The histories kept in
``tests/fixtures/histories`` (every kind of event, retries by hand, waits, a failure
path) must replay clean against their own definitions, whichever way they are split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keel.engine import NodeScheduled, NodeSkipped, RunCompleted, compile_plan
from keel.engine.events import to_data
from keel.engine.replay import compare, recorded_steps, replay, steps_by_kind
from keel.errors import InputError, KeelError
from keel.runtime import Worker, WorkerOptions, start_run
from keel.runtime.views.story import story_document
from keel.spec import WorkflowSpec, parse_spec
from keel.store.records import StoredEvent
from keel.store.sqlite import SQLiteStore
from keel.testing import replay as users_replay
from tests.unit import replayflows as flows
from tests.unit.test_recorded_histories import HISTORIES, stored_of


def recorded(store: SQLiteStore, spec: WorkflowSpec, run_input: dict[str, Any]) -> str:
    """A run of ``spec`` executed to its end by the worker; its id."""
    run_id = start_run(store, spec, run_input).id
    worker = Worker(store, WorkerOptions(concurrency=1))
    try:
        (done,) = worker.run_until_finished([run_id])
    finally:
        worker.close()
    assert done.status == "succeeded", done.reason
    return run_id


@pytest.fixture
def order_run(store: SQLiteStore) -> tuple[list[StoredEvent], str]:
    """A run of ``order`` for a customer who is not a VIP: charged, the desk not told."""
    run_id = recorded(store, flows.order.spec, {"amount": 20.0, "vip": False})
    return store.history(run_id), run_id


# --- the same code --------------------------------------------------------------------------


def test_a_history_replays_clean_against_the_code_it_was_recorded_with(
    order_run: tuple[list[StoredEvent], str],
) -> None:
    history, run_id = order_run
    result = replay(history, flows.order.spec, run_id=run_id)

    assert result.ok, result.divergence
    # run_started, then charge scheduled; charge's success, then notify skipped and the
    # run completed: three decisions made again
    assert result.decisions == 3
    assert result.state.status.value == "succeeded"
    assert result.state.output == {"result": "charged 20.0 USD"}


@pytest.mark.parametrize("history", HISTORIES)
def test_every_recorded_fixture_replays_clean_against_its_own_definition(
    history: dict[str, Any],
) -> None:
    spec = parse_spec(history["spec"])
    events = stored_of(history)
    result = replay(events, spec, run_id=history["run_id"])
    assert result.ok, result.divergence and result.divergence.summary()
    assert result.state.status.value == history["status"]
    # without its definition the history is split by the kind of each event: the same
    # events are found to be decisions, and they replay clean too
    steps, state = recorded_steps(compile_plan(spec), history["run_id"], events)
    by_kind = steps_by_kind(events)
    # histories recorded before the fix of a reloaded run telling an overdue approval
    # again hold that second ``approval_overdue``: the code no longer decides it, so it
    # is a cause there (what the recording process did), a decision by its kind
    told_again = _overdue_told_again(events)
    assert [d.seq for s in by_kind for d in s.decisions if d.seq not in told_again] == [
        d.seq for s in steps for d in s.decisions
    ]
    assert state.status.value == history["status"]
    if told_again:
        return  # by kind, that second telling is a decision the code no longer makes
    blind = compare(by_kind, compile_plan(spec), history["run_id"])
    assert blind.ok, blind.divergence and blind.divergence.summary()
    assert blind.decisions == len([d for s in steps for d in s.decisions])


def _overdue_told_again(events: list[Any]) -> set[int]:
    """The seqs of an ``approval_overdue`` of a node already told for that wait."""
    told: set[str] = set()
    again: set[int] = set()
    for stored in events:
        kind, node = stored.event.kind, getattr(stored.event, "node", None)
        if kind == "node_awaiting":
            told.discard(node)
        elif kind == "approval_overdue":
            if node in told:
                again.add(stored.seq)
            told.add(node)
    return again


def test_a_node_set_by_hand_on_a_failed_run_is_one_transition_with_its_retry() -> None:
    """The saga fixture's ``keel skip`` on a failed run recorded ``run_retried`` and
    ``node_set_by_hand`` together, then the decisions: both are causes of one step."""
    (history,) = [h for h in HISTORIES if h.values[0]["spec"]["name"] == "saga"][:1]
    events = stored_of(history.values[0])
    steps, _ = recorded_steps(compile_plan(parse_spec(history.values[0]["spec"])),
                              history.values[0]["run_id"], events)  # fmt: skip
    kinds = [[c.event.kind for c in step.causes] for step in steps]
    assert ["run_retried", "node_set_by_hand"] in kinds


# --- changed code ---------------------------------------------------------------------------


def test_a_node_added_before_a_recorded_node_is_the_first_divergence(
    order_run: tuple[list[StoredEvent], str],
) -> None:
    history, run_id = order_run
    result = replay(history, flows.order_checked.spec, recorded=flows.order.spec, run_id=run_id)

    found = result.divergence
    assert found is not None
    assert found.seq == 2  # the run's first decision
    assert isinstance(found.recorded, NodeScheduled)
    assert found.recorded.node == "charge"
    assert isinstance(found.decided, NodeScheduled)
    assert found.decided.node == "check_fraud"
    assert "a node added before a recorded node" in found.explanation
    assert found.summary().startswith(
        "event 2: recorded node_scheduled charge (attempt 1); the new code decides "
        "node_scheduled check_fraud (attempt 1) instead — check_fraud is not in the recorded"
    )


def test_a_changed_condition_is_the_first_divergence(
    order_run: tuple[list[StoredEvent], str],
) -> None:
    history, run_id = order_run
    result = replay(history, flows.order_always_told.spec, recorded=flows.order.spec,
                    run_id=run_id)  # fmt: skip

    found = result.divergence
    assert found is not None
    skipped = next(s for s in history if isinstance(s.event, NodeSkipped))
    assert found.seq == skipped.seq
    assert found.recorded == NodeSkipped(node="notify", reason="when: input.vip was false")
    assert isinstance(found.decided, NodeScheduled)
    assert found.decided.node == "notify"
    assert found.explanation == "its condition changed (when: input.vip → input.amount > 10)"
    assert result.decisions == 1  # charge was scheduled alike


def test_a_removed_node_is_the_first_divergence(
    order_run: tuple[list[StoredEvent], str],
) -> None:
    history, run_id = order_run
    result = replay(history, flows.order_untold.spec, recorded=flows.order.spec, run_id=run_id)

    found = result.divergence
    assert found is not None
    assert isinstance(found.recorded, NodeSkipped)
    assert found.recorded.node == "notify"
    assert isinstance(found.decided, RunCompleted)  # the new code completes the run there
    assert found.explanation == "node notify is not in the new code: a recorded node was removed"


def test_changed_arguments_are_the_first_divergence(
    order_run: tuple[list[StoredEvent], str],
) -> None:
    history, run_id = order_run
    result = replay(history, flows.order_in_euros.spec, recorded=flows.order.spec, run_id=run_id)

    found = result.divergence
    assert found is not None
    assert found.seq == 2
    assert found.recorded == NodeScheduled(node="charge", attempt=1, args={"amount": 20.0})
    assert found.decided == NodeScheduled(
        node="charge", attempt=1, args={"amount": 20.0, "currency": "EUR"}
    )
    assert found.explanation == (
        'its arguments are computed differently (currency: recorded "(none)", new "EUR")'
    )


def test_a_node_running_another_task_is_a_divergence(
    order_run: tuple[list[StoredEvent], str],
) -> None:
    history, run_id = order_run
    data = flows.order.spec.model_dump(mode="json")
    data["nodes"][0]["task"] = "tests.unit.replayflows:check_fraud"
    result = replay(history, parse_spec(data), recorded=flows.order.spec, run_id=run_id)

    found = result.divergence
    assert found is not None
    assert found.seq == 2
    assert found.explanation == (
        "node charge runs tests.unit.replayflows:check_fraud now; the recording ran "
        "tests.unit.replayflows:charge"
    )


def test_tasks_of_a_copy_under_another_module_name_are_compared_by_name(
    order_run: tuple[list[StoredEvent], str],
) -> None:
    """A copy of the code loaded under another module name: its tasks are the
    recording's (``renamed_modules``), unless one's name changed too."""
    from keel.engine.replay import renamed_modules

    history, run_id = order_run
    data = flows.order.spec.model_dump(mode="json")
    for node in data["nodes"]:
        node["task"] = node["task"].replace("tests.unit.replayflows:", "copy:")
    copy = parse_spec(data)
    old, new = compile_plan(flows.order.spec), compile_plan(copy)
    renamed = renamed_modules(old, new, "copy")
    assert renamed == {"copy": "tests.unit.replayflows"}
    assert renamed_modules(old, new, "other") == {}
    assert replay(history, copy, recorded=flows.order.spec, run_id=run_id).divergence is not None
    assert replay(history, copy, recorded=flows.order.spec, run_id=run_id, renamed=renamed).ok

    data["nodes"][0]["task"] = "copy:check_fraud"  # another task, not only another module
    swapped = parse_spec(data)
    assert renamed_modules(old, compile_plan(swapped), "copy") == {}
    found = replay(history, swapped, recorded=flows.order.spec, run_id=run_id,
                   renamed=renamed).divergence  # fmt: skip
    assert found is not None
    assert found.explanation == (
        "node charge runs copy:check_fraud now; the recording ran tests.unit.replayflows:charge"
    )


@pytest.mark.parametrize(
    ("changed", "words"),
    [
        (flows.order_checked, "a node added before a recorded node"),
        (flows.order_always_told, "its condition changed (when: input.vip → input.amount > 10)"),
        (flows.order_untold, "a recorded node was removed"),
        (flows.order_in_euros, "its arguments are computed differently"),
    ],
)
def test_without_the_recorded_definition_the_same_divergence_is_found(
    order_run: tuple[list[StoredEvent], str], changed: Any, words: str
) -> None:
    """``keel.testing.replay`` of ``keel history --json`` lines: no definition recorded
    with them, so the history is split by kind; the same first divergence is found."""
    history, run_id = order_run
    lines = "\n".join(
        json.dumps({"run_id": s.run_id, "seq": s.seq, "at": s.at, "prev_hash": s.prev_hash,
                    **to_data(s.event)})
        for s in history
    )  # fmt: skip
    with_definition = replay(history, changed.spec, recorded=flows.order.spec, run_id=run_id)
    result = users_replay(lines, changed)

    assert not result.ok
    assert result.divergence == with_definition.divergence
    assert result.divergence is not None
    assert words in result.divergence.explanation


# --- keel.testing.replay's inputs -----------------------------------------------------------


def test_keel_testing_replay_reads_every_shape_of_history(
    order_run: tuple[list[StoredEvent], str], tmp_path: Path
) -> None:
    history, run_id = order_run
    lines = [{"run_id": s.run_id, "seq": s.seq, "at": s.at, "prev_hash": s.prev_hash,
              **to_data(s.event)} for s in history]  # fmt: skip
    file = tmp_path / "order.jsonl"
    file.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    page = {"run_id": run_id, "events": [
        {"seq": s.seq, "at": s.at, "kind": s.event.kind, "node": None,
         "data": {k: v for k, v in to_data(s.event).items() if k != "kind"},
         "prev_hash": s.prev_hash, "hash": s.hash} for s in history]}  # fmt: skip

    for shape in (history, lines, file, file.read_text(), json.dumps(page), page):
        result = users_replay(shape, flows.order)
        assert result.ok, (type(shape), result.divergence)
        assert result.decisions == 3


def test_keel_testing_replay_refuses_what_is_not_a_history() -> None:
    with pytest.raises(InputError, match="history line 1 is not JSON"):
        users_replay("not json\n", flows.order)
    with pytest.raises(InputError, match="history line 1: not an event keel recorded"):
        users_replay([{"seq": 1, "at": 0.0, "kind": "made_up"}], flows.order)
    with pytest.raises(InputError, match="history line 1: it has no seq"):
        users_replay([{"at": 0.0, "kind": "run_paused", "by": "x"}], flows.order)
    with pytest.raises(InputError, match=r"expected a @keel\.workflow or a WorkflowSpec"):
        users_replay([], "order")
    with pytest.raises(KeelError, match="the history is empty"):
        users_replay([], flows.order)
    with pytest.raises(KeelError, match="starts with run_paused"):
        users_replay([{"seq": 1, "at": 0.0, "kind": "run_paused", "by": "x"}], flows.order)


# --- a run still going, and the story ---------------------------------------------------------


def test_a_run_still_going_replays_up_to_its_last_event(store: SQLiteStore) -> None:
    run_id = start_run(store, flows.order.spec, {"amount": 5.0}).id  # no worker: queued
    history = store.history(run_id)
    result = replay(history, flows.order.spec, run_id=run_id)
    assert result.ok
    assert result.state.status.value == "running"
    assert [s.event.kind for s in history] == ["run_started", "node_scheduled"]
    changed = replay(history, flows.order_in_euros.spec, recorded=flows.order.spec,
                     run_id=run_id)  # fmt: skip
    assert changed.divergence is not None
    assert changed.divergence.seq == 2


def test_the_story_tells_each_event_with_who_and_what(
    store: SQLiteStore, order_run: tuple[list[StoredEvent], str]
) -> None:
    history, run_id = order_run
    record = store.get_run(run_id)
    doc = story_document(record, compile_plan(flows.order.spec), history)

    assert doc["matches"] is True
    assert doc["mismatches"] == []
    entries = doc["entries"]
    assert [e["seq"] for e in entries] == [s.seq for s in history]
    by_kind = {e["kind"]: e for e in entries}
    assert by_kind["node_scheduled"]["by"] == "keel"
    assert by_kind["node_scheduled"]["decided"]
    assert by_kind["node_scheduled"]["values"] == {"args": {"amount": 20.0}}
    started = by_kind["node_started"]["by"]
    assert started
    assert not by_kind["node_started"]["decided"]
    # the result is told as the worker's that started the attempt, with its output
    assert by_kind["node_succeeded"]["by"] == started
    assert by_kind["node_succeeded"]["values"] == {"output": "charged 20.0 USD"}
    assert not by_kind["node_succeeded"]["decided"]
    assert by_kind["node_skipped"]["values"] == {"reason": "when: input.vip was false"}
    assert by_kind["run_completed"]["what"] == "run succeeded"


def test_the_story_says_when_the_runs_row_disagrees_with_its_history(
    store: SQLiteStore, order_run: tuple[list[StoredEvent], str]
) -> None:
    import dataclasses

    history, run_id = order_run
    edited = dataclasses.replace(store.get_run(run_id), output={"result": "refunded"})
    doc = story_document(edited, compile_plan(flows.order.spec), history)
    assert doc["matches"] is False
    assert doc["mismatches"] == [
        'the runs table says output {"result": "refunded"}, the history says '
        '{"result": "charged 20.0 USD"}'
    ]


@pytest.mark.parametrize("history", HISTORIES)
def test_every_fixture_event_is_told_in_words(history: dict[str, Any]) -> None:
    from keel.store.records import RunRecord

    spec = parse_spec(history["spec"])
    events = stored_of(history)
    record = RunRecord(history["run_id"], spec.name, spec.version, history["status"], None,
                       history["output"], history["reason"], events[0].at, events[-1].at,
                       history["last_seq"], history["head_hash"], None,
                       late=history.get("late", False))  # fmt: skip
    doc = story_document(record, compile_plan(spec), events)
    assert all(entry["what"] for entry in doc["entries"])
    people = {
        e["by"]
        for e in doc["entries"]
        if e["kind"] in ("approval_decided", "run_retried", "node_set_by_hand", "run_paused")
    }
    assert people <= {"tester", "keel"}
