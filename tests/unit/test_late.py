"""A workflow's ``expected_duration`` (its SLO): written in Python or YAML like the
deadline and checked against it; armed as a durable timer at the start and at a retry by
hand; when that timer fires on a run not ended, ``RunLate`` marks it late (state and the
runs table's flag, in one transition), and the run goes on."""

from __future__ import annotations

from typing import Any

import pytest

import keel
from keel.authoring.yaml_source import load_yaml_text
from keel.engine import RunState, apply, compile_plan, decide, from_data, to_data
from keel.engine.events import (
    RunCompleted,
    RunFailed,
    RunFailing,
    RunLate,
    RunPaused,
    RunRetried,
    RunStarted,
)
from keel.errors import SpecError
from keel.runtime.runs import advance, timers_of
from keel.runtime.worker.timers import timer_causes
from keel.spec import parse_spec
from keel.spec.canonical import spec_json
from keel.spec.durations import format_duration
from keel.spec.validate import parse_and_validate
from keel.store.records import Timer
from keel.store.writes import SetLate, SetStatus

NODES = [{"id": "a", "task": "m:f"}]


def spec_data(**fields: Any) -> dict[str, Any]:
    return {"name": "w", "nodes": NODES, **fields}


def started(**fields: Any) -> RunState:
    plan = compile_plan(parse_spec(spec_data(**fields)))
    state = RunState.new(plan, "r")
    apply(state, RunStarted(workflow="w", spec_version=plan.spec.version, input={}), 1)
    decide(state, 0.0)  # schedules a (and applies that)
    return state


def issues(data: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as raised:
        parse_and_validate(data)
    return [str(issue) for issue in raised.value.issues]


# --- the spec --------------------------------------------------------------------------------


def test_the_expected_duration_is_read_as_the_deadline_is() -> None:
    @keel.workflow(expected_duration="10m", deadline="1h")
    def timed() -> None:
        keel.timer("1s", id="pause")

    (from_yaml,) = load_yaml_text(
        "name: timed\nexpected_duration: PT10M\ndeadline: 3600\n"
        "nodes:\n  - {id: pause, kind: timer, duration: 1}\n",
        "timed.yaml",
    )
    assert (timed.spec.expected_duration, timed.spec.deadline) == (600.0, 3600.0)
    assert from_yaml.expected_duration == 600.0
    assert '"expected_duration":600' in spec_json(from_yaml)


def test_a_spec_without_an_expected_duration_keeps_its_version() -> None:
    plain = parse_spec(spec_data(deadline=60))
    assert "expected_duration" not in spec_json(plain)
    assert parse_spec(spec_data(deadline=60, expected_duration=None)).version == plain.version
    assert parse_spec(spec_data(deadline=60, expected_duration=30)).version != plain.version


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "expected_duration: Input should be greater than 0"),
        ("-5m", "expected_duration: Input should be greater than 0"),
        ("soon", "expected_duration: cannot read duration 'soon': use forms like '30s', '5m', "
                 "'1h30m', '2d', '250ms', an ISO 8601 duration such as 'PT5M', or a number of "
                 "seconds"),
    ],
)  # fmt: skip
def test_an_expected_duration_must_be_a_positive_duration(value: Any, message: str) -> None:
    assert issues(spec_data(expected_duration=value)) == [message]


@pytest.mark.parametrize("expected", ["1h", "2h"])
def test_an_expected_duration_must_be_shorter_than_the_deadline(expected: str) -> None:
    deadline_first = issues(spec_data(expected_duration=expected, deadline="1h"))
    assert deadline_first == [
        f"expected_duration: {expected} must be shorter than the deadline (1h): a run is "
        "marked late at its expected duration and stopped at its deadline"
    ]


def test_the_order_of_the_limits_is_reported_where_it_was_written() -> None:
    with pytest.raises(SpecError) as raised:
        load_yaml_text(
            "name: w\ndeadline: 10m\nexpected_duration: 15m\nnodes:\n  - {id: a, task: 'm:f'}\n",
            "flow.yaml",
        )
    assert [str(issue) for issue in raised.value.issues] == [
        "flow.yaml:3:20: expected_duration: 15m must be shorter than the deadline (10m): a "
        "run is marked late at its expected duration and stopped at its deadline"
    ]
    with pytest.raises(SpecError, match="expected_duration: 2h must be shorter"):

        @keel.workflow(expected_duration="2h", deadline="1h")
        def slow() -> None:
            keel.timer("1s", id="pause")


def test_an_expected_duration_alone_needs_no_deadline() -> None:
    assert parse_and_validate(spec_data(expected_duration="10m")).deadline is None


def test_durations_are_shown_as_they_are_written() -> None:
    shown = [format_duration(s) for s in (0.25, 1.5, 60, 90, 600, 845.4, 5400, 183600)]
    assert shown == ["250ms", "1.5s", "1m", "1m30s", "10m", "14m5s", "1h30m", "2d3h"]


# --- the engine --------------------------------------------------------------------------


def test_run_late_marks_the_state_late_and_decides_nothing() -> None:
    state = started(expected_duration=600)
    apply(state, RunLate(expected=600))
    assert state.late
    assert decide(state, 1.0) == []  # the run goes on as it was


def test_a_retry_by_hand_gives_a_late_run_its_time_again() -> None:
    state = started(expected_duration=600)
    apply(state, RunLate(expected=600))
    apply(state, RunFailed(reason="boom", node="a"))
    assert state.late  # it ended late
    apply(state, RunRetried(by="me", nodes=["a"]))
    assert not state.late


def test_run_late_reads_back_from_its_stored_form() -> None:
    data = to_data(RunLate(expected=600.0))
    assert data == {"kind": "run_late", "expected": 600.0}
    assert from_data(data) == RunLate(expected=600.0)


def test_the_late_timer_is_armed_at_the_start_and_at_a_retry_by_hand() -> None:
    plan = compile_plan(parse_spec(spec_data(expected_duration=600, deadline=3600)))
    start = RunStarted(workflow="w", spec_version=plan.spec.version, input={})
    armed = [Timer("r", "late", 1600.0), Timer("r", "deadline", 4600.0)]
    assert timers_of("r", plan, [start], 1000.0) == armed
    assert timers_of("r", plan, [RunRetried(by="me", nodes=["a"])], 1000.0) == armed
    assert timers_of("r", plan, [RunLate(expected=600)], 1000.0) == []
    alone = compile_plan(parse_spec(spec_data(expected_duration=600)))
    assert timers_of("r", alone, [start], 0.0) == [Timer("r", "late", 600.0)]


@pytest.mark.parametrize("then", [None, RunPaused(by="me"), RunFailing(reason="boom")])
def test_the_late_timer_marks_a_run_not_ended_late(then: Any) -> None:
    state = started(expected_duration=600)
    if then is not None:
        apply(state, then)
    assert timer_causes(state, Timer("r", "late", 600.0)) == [RunLate(expected=600.0)]


@pytest.mark.parametrize(
    "ending", [RunCompleted(output={}), RunFailed(reason="boom"), RunLate(expected=600)]
)
def test_the_late_timer_of_a_run_ended_or_late_already_fires_nothing(ending: Any) -> None:
    state = started(expected_duration=600)
    apply(state, ending)
    assert timer_causes(state, Timer("r", "late", 600.0)) == []


def test_the_transition_of_run_late_sets_the_flag_and_leaves_the_status() -> None:
    state = started(expected_duration=600)
    transition = advance("r", state, [RunLate(expected=600)], 600.0)
    assert list(transition.events) == [RunLate(expected=600)]
    assert transition.of(SetLate) == [SetLate(True)]
    assert transition.of(SetStatus) == []
    # a retry of the late run sets it back, with the run's status
    apply(state, RunFailed(reason="boom", node="a"))
    retried = advance("r", state, [RunRetried(by="me", nodes=["a"])], 700.0)
    assert retried.of(SetLate) == [SetLate(False)]
    assert retried.status == "running"
