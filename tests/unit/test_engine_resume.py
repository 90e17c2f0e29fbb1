"""Resuming a run from its history, max_parallel limits, reclaimed attempts, failing maps.

A crashed run resumes by replaying its history through ``apply`` and handing the state to
``decide``, which must return only what was not decided yet. These tests replay every
prefix of simulated histories (through JSON, as the store does) and compare the rebuilt
state with the live one, cut histories anywhere and carry on from there, and check the
run's and each map's ``max_parallel`` at every point of the history.
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from keel.engine import (
    ErrorInfo,
    Event,
    MapExpanded,
    NodeFailed,
    NodeReclaimed,
    NodeScheduled,
    NodeStarted,
    NodeStatus,
    NodeSucceeded,
    Plan,
    RunCompleted,
    RunFailed,
    RunState,
    RunStatus,
    apply,
    compile_plan,
    decide,
    from_data,
    is_finished,
    to_data,
)
from keel.engine.state import ENDED
from keel.spec import parse_spec
from tests.unit.engine_sim import BoomError, Outcome, Simulation
from tests.unit.test_engine import random_plans, size_of, snapshot

Key = tuple[str, int | None, int]  # (node, item, attempt): one attempt of a node or item

PROPERTY = settings(max_examples=60, deadline=None)
MAYBE_LIMIT: st.SearchStrategy[int | None] = st.one_of(st.none(), st.integers(1, 3))
NO_LIMIT: st.SearchStrategy[int | None] = st.none()
LIMIT: st.SearchStrategy[int | None] = st.integers(1, 3)


# --- helpers ---------------------------------------------------------------------------------


def key_of(
    event: NodeScheduled | NodeSucceeded | NodeFailed | NodeStarted | NodeReclaimed,
) -> Key:
    return (event.node, event.item, event.attempt)


def through_json(events: Iterable[Event]) -> list[Event]:
    """The events as the store gives them back: to JSON text and back."""
    return [from_data(json.loads(json.dumps(to_data(event)))) for event in events]


def replayed(plan: Plan, events: Iterable[Event]) -> RunState:
    state = RunState.new(plan)
    for event in events:
        apply(state, event)
    return state


def feeding_order(state: RunState) -> list[str]:
    """The maps ``decide`` will feed, in the order it will: the feeding queue without the
    entries it drops when it comes to them (maps ended, with nothing left, or full)."""
    order: list[str] = []
    for node_id in state.to_feed:
        node, limit = state.nodes[node_id], state.plan.nodes[node_id].max_parallel
        left = node.item_count is not None and node.next_item < node.item_count
        full = limit is not None and node.items_out >= limit
        if node.status not in ENDED and left and not full and node_id not in order:
            order.append(node_id)
    return order


def deep_snapshot(state: RunState) -> Any:
    """``snapshot`` plus the run's attempt count, every per-node counter of the state and
    the order in which maps will be fed.

    Leaves out the two caches ``decide`` refills after a replay: a map's evaluated items
    and its shared arguments.
    """
    nodes = {}
    for node_id, node in state.nodes.items():
        is_task = state.plan.nodes[node_id].items is None
        nodes[node_id] = (
            node.status, node.waiting_on, node.parents_succeeded, node.parents_failed,
            node.parents_skipped, node.attempt, node.failed_attempt,
            node.args if is_task else None, node.output, node.error, node.item_count,
            node.next_item, node.items_out, node.items_done, node.item_outputs,
            node.item_attempts, node.item_args, sorted(node.items_failed),
        )  # fmt: skip
    return (snapshot(state), state.out, nodes, feeding_order(state))


def ended_attempts(history: Iterable[Event]) -> set[Key]:
    return {
        key_of(event)
        for event in history
        if isinstance(event, NodeSucceeded | NodeFailed) and event.attempt > 0
    }


def unfinished(history: list[Event]) -> list[NodeScheduled]:
    """What a resumed worker pool has to run: attempts scheduled whose outcome is not known."""
    ended = ended_attempts(history)
    return [e for e in history if isinstance(e, NodeScheduled) and key_of(e) not in ended]


def resume(plan: Plan, prefix: list[Event]) -> Simulation:
    """A simulation carrying on from a history prefix, as a restarted engine would."""
    state = replayed(plan, through_json(prefix))
    history = list(prefix)
    history += decide(state, 0.0)  # whatever the crash cut off before it was recorded
    return Simulation(plan, state, history, unfinished(history))


def perform(sim: Simulation, work: NodeScheduled, outcome: Outcome) -> None:
    """Run one attempt taken off the ready list and record its outcome (as ``step`` does)."""
    try:
        output = outcome(work.node, work.args, work.attempt)
    except BoomError as exc:
        error = ErrorInfo(type="Boom", message=str(exc))
        sim.record([NodeFailed(node=work.node, attempt=work.attempt, error=error, item=work.item)])
        return
    sim.record([NodeSucceeded(node=work.node, attempt=work.attempt, output=output, item=work.item)])


def drive(sim: Simulation, rng: random.Random, outcome: Outcome, check: Callable[[], None]) -> None:
    """Run the simulation to its end, calling ``check`` after the start and every step."""
    check()
    while not is_finished(sim.state.status) and sim.ready:
        sim.step(rng, outcome)
        check()


def items_list(count: int) -> str:
    return "[" + ", ".join(str(i) for i in range(1, count + 1)) + "]"


@dataclass(frozen=True)
class Case:
    """A random plan with retries and limits, the same plan without limits, and outcomes."""

    plan: Plan
    unlimited: Plan
    #: nodes whose first attempt fails (every odd item, for maps); they have 3 attempts
    flaky: frozenset[str]
    #: nodes whose every attempt fails
    doomed: frozenset[str]

    def outcome(self, node: str, args: dict[str, Any], attempt: int) -> Any:
        if node in self.doomed:
            raise BoomError(f"{node} always fails")
        if node in self.flaky and attempt == 1 and args.get("i", 1) % 2 == 1:
            raise BoomError(f"{node} attempt 1")
        if "i" in args:  # a map item: its output says which item it was
            return [args["i"], len(args["x"])]
        return size_of(node, args, attempt)


@st.composite
def cases(
    draw: st.DrawFn,
    *,
    run_limit: st.SearchStrategy[int | None] = MAYBE_LIMIT,
    map_limit: st.SearchStrategy[int | None] = MAYBE_LIMIT,
    retries: bool = True,
    doom: bool = False,
    maps: bool = False,
) -> Case:
    """``random_plans`` with maps of 0-5 items, some retried and failing nodes, and limits.

    ``maps``: about half the nodes are maps (not one in six), so that several maps often
    wait for the run's free slots at the same time.
    """
    data = draw(random_plans()).spec.model_dump(mode="json", exclude_none=True)
    flaky: set[str] = set()
    limits: dict[str, int] = {}
    for node in data["nodes"]:
        if maps and node["kind"] == "task" and draw(st.integers(0, 2)) > 0:
            node.update(kind="map", item_arg="i")
        if retries and draw(st.integers(0, 2)) == 0:
            node["retry"] = {"max_attempts": 3}
            if draw(st.booleans()):
                flaky.add(node["id"])
        if node["kind"] == "map":
            node["items"] = items_list(draw(st.integers(0, 5)))
            limit = draw(map_limit)
            if limit is not None:
                limits[node["id"]] = limit
    doomed: set[str] = set()
    if doom and draw(st.booleans()):
        doomed.add(draw(st.sampled_from([node["id"] for node in data["nodes"]])))
    unlimited = compile_plan(parse_spec(data))
    limited = copy.deepcopy(data)
    limit = draw(run_limit)
    if limit is not None:
        limited["max_parallel"] = limit
    for node in limited["nodes"]:
        if node["id"] in limits:
            node["max_parallel"] = limits[node["id"]]
    plan = compile_plan(parse_spec(limited))
    return Case(plan, unlimited, frozenset(flaky), frozenset(doomed))


def plan_of(
    nodes: list[dict[str, Any]], outputs: dict[str, str] | None = None, **spec: Any
) -> Plan:
    return compile_plan(parse_spec({"name": "t", "nodes": nodes, "outputs": outputs or {}, **spec}))


def echo(node: str, args: dict[str, Any], attempt: int) -> Any:
    return args.get("x", node)


def scheduled(events: Iterable[Event]) -> list[Key]:
    return [key_of(e) for e in events if isinstance(e, NodeScheduled)]


# --- 1. resume at any point ------------------------------------------------------------------


#: cases with a ``max_parallel`` for the run and for maps at once, and many maps: they wait
#: for the run's free slots together, which is where the order of feeding them matters
BOTH_LIMITS = cases(doom=True, run_limit=LIMIT, map_limit=LIMIT, maps=True)


@PROPERTY
@given(st.one_of(cases(doom=True), BOTH_LIMITS), st.randoms(use_true_random=False))
def test_a_replayed_history_decides_nothing_new_and_equals_the_live_state(
    case: Case, rng: random.Random
) -> None:
    sim = Simulation.start(case.plan, {})
    stored: list[Event] = []

    def check() -> None:
        stored.extend(through_json(sim.history[len(stored) :]))
        state = replayed(case.plan, stored)
        assert deep_snapshot(state) == deep_snapshot(sim.state)
        assert decide(state, 0.0) == []
        assert deep_snapshot(state) == deep_snapshot(sim.state)

    drive(sim, rng, case.outcome, check)
    assert is_finished(sim.state.status)
    if not case.doomed:
        assert sim.state.status is RunStatus.SUCCEEDED


@PROPERTY
@given(random_plans(), st.randoms(use_true_random=False))
def test_replaying_every_prefix_of_a_plain_run_decides_nothing(
    plan: Plan, rng: random.Random
) -> None:
    sim = Simulation.start(plan, {})

    def check() -> None:
        state = replayed(plan, through_json(sim.history))
        assert decide(state, 0.0) == []
        assert snapshot(state) == snapshot(sim.state)

    drive(sim, rng, size_of, check)
    assert sim.state.status is RunStatus.SUCCEEDED


def test_a_run_that_crashed_before_recording_a_retry_schedules_it_once_on_resume() -> None:
    plan = plan_of(
        [{"id": "a", "task": "m:f", "retry": {"max_attempts": 3, "initial_backoff": 0},
          "args": {"x": 1}},
         {"id": "b", "task": "m:f", "args": {"x": "${{ nodes.a.output + 1 }}"}}],
        {"out": "nodes.b.output"},
    )  # fmt: skip
    error = ErrorInfo(type="Boom", message="first")
    prefix: list[Event] = [
        *Simulation.start(plan, {}).history,
        NodeFailed(node="a", attempt=1, error=error),  # recorded; the crash came before decide
    ]
    sim = resume(plan, prefix)
    assert sim.history[len(prefix) :] == [NodeScheduled(node="a", attempt=2, args={"x": 1})]
    assert decide(replayed(plan, sim.history), 0.0) == []
    state = sim.run(random.Random(0), echo)
    assert state.output == {"out": 2}
    assert scheduled(sim.history) == [("a", None, 1), ("a", None, 2), ("b", None, 1)]


def test_a_replayed_map_feeds_its_remaining_items_after_the_cache_was_lost() -> None:
    plan = plan_of(
        [{"id": "m", "kind": "map", "task": "m:g", "items": "[10, 20, 30]", "item_arg": "x",
          "max_parallel": 1}],
        {"out": "nodes.m.output"},
    )  # fmt: skip
    live = Simulation.start(plan, {})
    assert scheduled(live.history) == [("m", 0, 1)]
    live.step(random.Random(0), echo)
    sim = resume(plan, live.history)
    assert sim.history == live.history  # nothing was cut off: nothing new is decided
    assert [(w.item, w.args) for w in sim.ready] == [(1, {"x": 20})]
    assert sim.run(random.Random(0), echo).output == {"out": [10, 20, 30]}


# --- 2. resume, then carry on -----------------------------------------------------------------


@PROPERTY
@given(cases(), st.randoms(use_true_random=False), st.randoms(use_true_random=False), st.data())
def test_a_history_cut_anywhere_resumes_to_the_same_final_state(
    case: Case, first: random.Random, second: random.Random, data: st.DataObject
) -> None:
    whole = Simulation.start(case.plan, {})
    whole.run(first, case.outcome)
    assert whole.state.status is RunStatus.SUCCEEDED
    cut = data.draw(st.integers(1, len(whole.history)), label="cut")

    sim = resume(case.plan, whole.history[:cut])
    sim.run(second, case.outcome)

    assert deep_snapshot(sim.state) == deep_snapshot(whole.state)
    keys = scheduled(sim.history)
    assert len(keys) == len(set(keys)), "an attempt was scheduled twice"
    assert sorted(keys, key=repr) == sorted(scheduled(whole.history), key=repr)
    assert sum(isinstance(e, RunCompleted) for e in sim.history) == 1
    assert deep_snapshot(replayed(case.plan, through_json(sim.history))) == deep_snapshot(sim.state)


@PROPERTY
@given(
    st.one_of(cases(doom=True), BOTH_LIMITS),
    st.randoms(use_true_random=False),
    st.data(),
)
def test_resuming_between_steps_records_the_same_future_as_the_live_run(
    case: Case, rng: random.Random, data: st.DataObject
) -> None:
    whole = Simulation.start(case.plan, {})
    boundaries: list[tuple[int, list[Key]]] = []

    def note() -> None:
        boundaries.append((len(whole.history), [key_of(w) for w in whole.ready]))

    drive(whole, rng, case.outcome, note)
    cut, ready = boundaries[data.draw(st.integers(0, len(boundaries) - 1), label="boundary")]
    attempts = set(scheduled(whole.history))
    # the attempts the live run completed after the cut, in the order it completed them
    later = [
        key_of(e)
        for e in whole.history[cut:]
        if isinstance(e, NodeSucceeded | NodeFailed) and key_of(e) in attempts
    ]

    sim = resume(case.plan, whole.history[:cut])
    assert len(sim.history) == cut, "decide re-decided something on resume"
    assert [key_of(w) for w in sim.ready] == ready
    for key in later:
        (work,) = [w for w in sim.ready if key_of(w) == key]
        sim.ready.remove(work)
        perform(sim, work, case.outcome)

    assert sim.history == whole.history
    assert deep_snapshot(sim.state) == deep_snapshot(whole.state)


def test_a_resumed_run_feeds_maps_in_the_order_the_live_run_would() -> None:
    plan = plan_of(
        [{"id": "a", "kind": "map", "task": "m:g", "items": "[1, 2]", "item_arg": "x",
          "max_parallel": 1},
         {"id": "b", "kind": "map", "task": "m:g", "items": "[1, 2]", "item_arg": "x"}],
        max_parallel=1,
    )  # fmt: skip
    live = Simulation.start(plan, {})
    perform(live, live.ready.pop(0), echo)  # a[0] ends: b[0] takes the run's one slot
    assert scheduled(live.history) == [("a", 0, 1), ("b", 0, 1)]
    cut = len(live.history)
    resumed = resume(plan, live.history)
    assert resumed.history == live.history
    perform(live, live.ready.pop(0), echo)  # b[0] ends: the live run feeds b[1]
    perform(resumed, resumed.ready.pop(0), echo)  # the resumed run feeds a[1] instead
    assert scheduled(live.history[cut:]) == [("b", 1, 1)]
    assert scheduled(resumed.history[cut:]) == scheduled(live.history[cut:])


# --- 3. max_parallel ---------------------------------------------------------------------------


def outstanding_attempts(history: Iterable[Event]) -> Iterable[set[Key]]:
    """After each event: the attempts scheduled whose outcome has not been recorded."""
    out: set[Key] = set()
    for event in history:
        if isinstance(event, NodeScheduled):
            out.add(key_of(event))
        elif isinstance(event, NodeSucceeded | NodeFailed):
            out.discard(key_of(event))
        yield set(out)


def last_attempt(plan: Plan, node: str) -> int:
    return plan.nodes[node].max_attempts


def outstanding_items(plan: Plan, history: Iterable[Event]) -> Iterable[Counter[str]]:
    """After each event: per map, how many items started and neither succeeded nor failed
    for good (an item waiting for its retry is still out)."""
    out: set[tuple[str, int]] = set()
    for event in history:
        if not isinstance(event, NodeScheduled | NodeSucceeded | NodeFailed) or event.item is None:
            pass
        elif isinstance(event, NodeScheduled):
            out.add((event.node, event.item))
        elif isinstance(event, NodeSucceeded) or event.attempt >= last_attempt(plan, event.node):
            out.discard((event.node, event.item))
        yield Counter(node for node, _ in out)


@PROPERTY
@given(cases(run_limit=LIMIT, map_limit=NO_LIMIT), st.randoms(use_true_random=False))
def test_the_run_never_has_more_attempts_out_than_its_max_parallel(
    case: Case, rng: random.Random
) -> None:
    limit = case.plan.max_parallel or 100_000
    sim = Simulation.start(case.plan, {})

    def check() -> None:
        assert sim.state.out == len(unfinished(sim.history))

    drive(sim, rng, case.outcome, check)
    for out in outstanding_attempts(sim.history):
        assert len(out) <= limit, f"{sorted(out, key=repr)} out at once, limit {limit}"
    assert sim.state.status is RunStatus.SUCCEEDED

    free = Simulation.start(case.unlimited, {}).run(random.Random(0), case.outcome)
    assert snapshot(sim.state) == snapshot(free)


@PROPERTY
@given(cases(map_limit=LIMIT), st.randoms(use_true_random=False))
def test_a_map_never_has_more_items_out_than_its_max_parallel_and_keeps_their_order(
    case: Case, rng: random.Random
) -> None:
    sim = Simulation.start(case.plan, {})
    sim.run(rng, case.outcome)
    assert sim.state.status is RunStatus.SUCCEEDED
    for out in outstanding_items(case.plan, sim.history):
        for node_id, count in out.items():
            limit = case.plan.nodes[node_id].max_parallel
            assert limit is None or count <= limit, f"{node_id}: {count} items out, limit {limit}"
    for node_id, node in case.plan.nodes.items():
        output = sim.state.nodes[node_id].output
        if node.items is not None and sim.state.nodes[node_id].status is NodeStatus.SUCCEEDED:
            assert [item for item, _ in output] == list(range(1, len(output) + 1))

    free = Simulation.start(case.unlimited, {}).run(random.Random(0), case.outcome)
    assert snapshot(sim.state) == snapshot(free)


def test_run_max_parallel_holds_back_ready_nodes_until_a_slot_frees() -> None:
    plan = plan_of(
        [{"id": f"r{i}", "task": "m:f", "args": {"x": i}} for i in range(4)],
        {"all": "[nodes.r0.output, nodes.r1.output, nodes.r2.output, nodes.r3.output]"},
        max_parallel=2,
    )
    sim = Simulation.start(plan, {})
    assert scheduled(sim.history) == [("r0", None, 1), ("r1", None, 1)]
    assert sim.state.out == 2
    resumed = replayed(plan, through_json(sim.history))
    assert decide(resumed, 0.0) == []  # still full after a replay

    perform(sim, sim.ready.pop(1), echo)  # r1 ends: exactly one more goes out
    assert scheduled(sim.history)[2:] == [("r2", None, 1)]
    assert sim.run(random.Random(0), echo).output == {"all": [0, 1, 2, 3]}


def test_map_max_parallel_feeds_one_item_per_item_ended() -> None:
    plan = plan_of(
        [{"id": "m", "kind": "map", "task": "m:g", "items": "[1, 2, 3, 4, 5]", "item_arg": "x",
          "max_parallel": 2, "retry": {"max_attempts": 2}}],
        {"out": "nodes.m.output"},
    )  # fmt: skip
    sim = Simulation.start(plan, {})
    assert scheduled(sim.history) == [("m", 0, 1), ("m", 1, 1)]
    assert sim.state.nodes["m"].items_out == 2

    error = ErrorInfo(type="Boom", message="once")
    sim.ready.pop(0)
    sim.record([NodeFailed(node="m", attempt=1, error=error, item=0)])
    # the failed item is retried, and still counts against the map's limit meanwhile
    assert scheduled(sim.history)[2:] == [("m", 0, 2)]
    assert sim.state.nodes["m"].items_out == 2

    def tenfold(node: str, args: dict[str, Any], attempt: int) -> Any:
        return args["x"] * 10

    state = sim.run(random.Random(3), tenfold)
    assert state.output == {"out": [10, 20, 30, 40, 50]}


# --- 4. NodeStarted and NodeReclaimed --------------------------------------------------------


def status_of(state: RunState, node: str) -> NodeStatus:
    return state.nodes[node].status


def counters(state: RunState) -> Any:
    return (
        state.out, state.ended,
        {nid: (n.attempt, n.failed_attempt, n.waiting_on, n.next_item, n.items_out,
               n.items_done, dict(n.item_attempts), sorted(n.items_failed))
         for nid, n in state.nodes.items()},
    )  # fmt: skip


@PROPERTY
@given(cases(), st.randoms(use_true_random=False))
def test_started_and_reclaimed_attempts_replay_to_the_same_state(
    case: Case, rng: random.Random
) -> None:
    sim = Simulation.start(case.plan, {})
    reclaims: Counter[Key] = Counter()
    while not is_finished(sim.state.status) and sim.ready:
        work = sim.ready.pop(rng.randrange(len(sim.ready)))
        node = sim.state.nodes[work.node]
        length = len(sim.history)
        sim.record([NodeStarted(node=work.node, attempt=work.attempt, worker="w", item=work.item)])
        assert len(sim.history) == length + 1, "a start decided something"
        if work.item is None:
            assert node.status is NodeStatus.RUNNING
        if reclaims[key_of(work)] < 2 and rng.random() < 0.4:
            reclaims[key_of(work)] += 1
            before, status = counters(sim.state), node.status
            reclaimed = NodeReclaimed(
                node=work.node, attempt=work.attempt, owner="w", reason="lease expired",
                item=work.item,
            )  # fmt: skip
            sim.record([reclaimed])
            assert len(sim.history) == length + 2, "a reclaim decided something"
            assert counters(sim.state) == before
            if work.item is None:
                assert node.status is NodeStatus.SCHEDULED
            else:
                assert node.status is status is NodeStatus.RUNNING
            state = replayed(case.plan, through_json(sim.history))
            assert decide(state, 0.0) == []
            assert deep_snapshot(state) == deep_snapshot(sim.state)
            sim.ready.append(work)  # the same attempt, queued again
            continue
        perform(sim, work, case.outcome)

    assert sim.state.status is RunStatus.SUCCEEDED
    assert all(key_of(e) in reclaims for e in sim.history if isinstance(e, NodeReclaimed))
    state = replayed(case.plan, through_json(sim.history))
    assert decide(state, 0.0) == []
    assert deep_snapshot(state) == deep_snapshot(sim.state)
    plain = Simulation.start(case.plan, {}).run(random.Random(0), case.outcome)
    assert deep_snapshot(sim.state) == deep_snapshot(plain)


def test_a_reclaimed_node_is_scheduled_again_without_a_new_decision() -> None:
    plan = plan_of(
        [{"id": "a", "task": "m:f", "args": {"x": 1}},
         {"id": "b", "task": "m:f", "args": {"x": "${{ nodes.a.output }}"}}],
        max_parallel=1,
    )  # fmt: skip
    state = replayed(plan, Simulation.start(plan, {}).history)
    assert status_of(state, "a") is NodeStatus.SCHEDULED
    apply(state, NodeStarted(node="a", attempt=1, worker="w1"))
    assert status_of(state, "a") is NodeStatus.RUNNING
    before = counters(state)
    apply(state, NodeReclaimed(node="a", attempt=1, owner="w1", reason="owner died"))
    assert status_of(state, "a") is NodeStatus.SCHEDULED
    assert counters(state) == before
    assert state.out == 1
    assert decide(state, 0.0) == []
    apply(state, NodeStarted(node="a", attempt=1, worker="w2"))
    apply(state, NodeSucceeded(node="a", attempt=1, output=7))
    assert decide(state, 0.0) == [NodeScheduled(node="b", attempt=1, args={"x": 7})]


# --- 5. a map item that fails for good --------------------------------------------------------


@PROPERTY
@given(
    st.integers(2, 5),
    st.data(),
    st.one_of(st.none(), st.integers(1, 3)),
    st.randoms(use_true_random=False),
)
def test_a_map_item_out_of_attempts_fails_the_map_and_the_run_once(
    count: int, data: st.DataObject, limit: int | None, rng: random.Random
) -> None:
    bad = data.draw(st.integers(1, count), label="failing item")
    extra = {"max_parallel": limit} if limit is not None else {}
    plan = plan_of(
        [{"id": "side", "task": "m:f", "args": {"x": 0}},
         {"id": "m", "kind": "map", "task": "m:g", "items": items_list(count), "item_arg": "x",
          **extra},
         {"id": "after", "task": "m:f", "args": {"x": "${{ nodes.m.output }}"}}],
        {"out": "nodes.after.output"},
    )  # fmt: skip

    def outcome(node: str, args: dict[str, Any], attempt: int) -> Any:
        if node == "m" and args["x"] == bad:
            raise BoomError(f"item {bad}")
        return args["x"]

    sim = Simulation.start(plan, {})
    sim.run(rng, outcome)
    assert sim.state.status is RunStatus.FAILED
    assert sim.state.nodes["m"].status is NodeStatus.FAILED

    # the attempts still out report afterwards; the run already failed
    for work in list(sim.ready):
        sim.ready.remove(work)
        length, ended = len(sim.history), sim.state.ended
        perform(sim, work, outcome)
        assert len(sim.history) == length + 1, "a late outcome decided something"
        assert sim.state.ended == ended + (work.node == "side")  # a map item ends no node
        assert sim.state.ended <= len(plan.nodes)

    assert sum(isinstance(e, RunFailed) for e in sim.history) == 1
    assert [e.node for e in sim.history if isinstance(e, NodeFailed) and e.attempt == 0] == ["m"]
    assert not [e for e in sim.history if isinstance(e, NodeSucceeded) and e.node == "m"
                and e.item is None]  # fmt: skip
    assert sim.state.status is RunStatus.FAILED
    assert sim.state.nodes["m"].status is NodeStatus.FAILED
    assert sim.state.nodes["after"].status is NodeStatus.WAITING
    assert sim.state.ended <= len(plan.nodes)
    state = replayed(plan, through_json(sim.history))
    assert decide(state, 0.0) == []
    assert deep_snapshot(state) == deep_snapshot(sim.state)


def test_late_item_successes_after_a_map_failed_do_not_complete_it() -> None:
    plan = plan_of(
        [{"id": "m", "kind": "map", "task": "m:g", "items": "[1, 2, 3]", "item_arg": "x"}],
        {"out": "nodes.m.output"},
    )
    sim = Simulation.start(plan, {})
    assert [e for e in sim.history if isinstance(e, MapExpanded)] == [
        MapExpanded(node="m", count=3)
    ]
    error = ErrorInfo(type="Boom", message="no", retryable=False)
    sim.record([NodeFailed(node="m", attempt=1, error=error, item=1)])
    assert sim.state.status is RunStatus.FAILED
    ended = sim.state.ended
    length = len(sim.history)
    sim.record([NodeSucceeded(node="m", attempt=1, output=1, item=0)])
    sim.record([NodeSucceeded(node="m", attempt=1, output=3, item=2)])
    assert len(sim.history) == length + 2
    assert sim.state.ended == ended == 1
    assert sim.state.nodes["m"].status is NodeStatus.FAILED
    assert sum(isinstance(e, RunFailed) for e in sim.history) == 1
