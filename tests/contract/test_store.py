"""The store contract: what every backend promises the runtime, checked through ``Store``.

Each test drives the store the way the runtime does (``advance`` on a replayed state,
then ``create_run`` / ``claim`` / ``commit``) and asserts something the runtime relies
on: gapless numbering, at most one holder per attempt, refused transitions writing
nothing, end states emptying the queue. The last tests are SQLite-specific: migrations,
and several processes claiming from one file.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from keel.engine import (
    MapExpanded,
    NodeReclaimed,
    NodeScheduled,
    NodeStarted,
    NodeSucceeded,
    RunCancelled,
    RunStarted,
)
from keel.errors import ConflictError, LeaseLostError, RunNotFoundError, StoreError
from keel.runtime.runs import advance
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store import Lease, Store, StoredEvent, Timer, Transition
from keel.store.chain import GENESIS
from keel.store.sql import load_migrations
from keel.store.sqlite import SQLiteStore
from keel.store.writes import ClearTimer, LeaseRequest, SetTimer
from tests.contract.conftest import (
    T0,
    Driver,
    finished_three_node_run,
    make_spec,
    map_spec,
    raw_sql,
    roots_spec,
    three_node_spec,
    with_enqueued,
)

ROOT = Path(__file__).resolve().parents[2]

Key = tuple[str, str, int | None, int]


def key(lease: Lease) -> Key:
    """What names one attempt: run, node, item, attempt number."""
    return lease.run_id, lease.node, lease.item, lease.attempt


def snapshot(store: Store, run_id: str) -> tuple[Any, ...]:
    """Everything a refused transition must leave as it was."""
    return (
        store.get_run(run_id),
        store.history(run_id),
        store.ready_count(run_id),
        sorted(store.leases(run_id), key=key),
    )


def add_timers(
    store: Store, run_id: str, at: float, *timers: Timer, clear: tuple[str, ...] = ()
) -> None:
    """Commit a transition that only sets or clears timers."""
    last = store.get_run(run_id).last_seq
    writes = [*map(SetTimer, timers), *map(ClearTimer, clear)]
    transition = Transition(run_id, last, at, events=[], writes=writes)
    (result,) = store.commit([transition])
    assert result.error is None


# --- specs --------------------------------------------------------------------------------


def rich_spec() -> WorkflowSpec:
    return parse_spec(
        {
            "name": "rich",
            "description": "every kind of field, so that none is lost on the way",
            "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
            "deadline": "1h",
            "max_parallel": 4,
            "defaults": {"retry": {"max_attempts": 3, "initial_backoff": "2s"}, "timeout": "30s"},
            "nodes": [
                {"id": "a", "task": "m:f", "queue": "q1", "priority": 5, "timeout": "5m",
                 "args": {"x": "${{ input.n }}", "y": 1.5, "z": "héllo ✓"}},
                {"id": "b", "kind": "map", "task": "m:g", "items": "nodes.a.output",
                 "item_arg": "i", "max_parallel": 2, "join": "all_done"},
            ],
            "outputs": {"r": "nodes.b.output"},
            "triggers": [{"kind": "schedule", "cron": "0 9 * * 1"}],
        }
    )  # fmt: skip


def test_a_saved_spec_loads_back_under_its_version(store: Store) -> None:
    spec = rich_spec()
    store.save_spec(spec, T0)
    store.save_spec(spec, T0 + 1)  # a no-op, not an error
    loaded = store.load_spec(spec.version)
    assert loaded == spec
    assert loaded.version == spec.version


def test_loading_an_unknown_version_is_a_store_error(store: Store) -> None:
    store.save_spec(make_spec(), T0)
    with pytest.raises(StoreError, match="no workflow definition"):
        store.load_spec("0" * 64)


def test_a_spec_altered_in_the_database_is_refused(sqlite_store: SQLiteStore) -> None:
    spec = make_spec()
    sqlite_store.save_spec(spec, T0)
    raw_sql(sqlite_store.path, "UPDATE specs SET spec = replace(spec, '\"m:f\"', '\"evil:f\"')")
    ((stored,),) = raw_sql(sqlite_store.path, "SELECT spec FROM specs")
    assert "evil:f" in stored
    with pytest.raises(StoreError, match="altered"):
        sqlite_store.load_spec(spec.version)


def test_a_spec_corrupted_in_the_database_is_a_store_error(sqlite_store: SQLiteStore) -> None:
    spec = make_spec()
    sqlite_store.save_spec(spec, T0)
    raw_sql(sqlite_store.path, "UPDATE specs SET spec = '{\"name\": '")
    with pytest.raises(StoreError):
        sqlite_store.load_spec(spec.version)


# --- creating and finding runs ------------------------------------------------------------


def test_create_run_records_the_first_transition_numbered_from_one(store: Store) -> None:
    driver = Driver(store, make_spec(), "run-1", {"n": 1, "name": "Zoë"})
    events = driver.start(origin="flows/t.py")

    assert [stored.seq for stored in events] == [1, 2]
    assert [type(stored.event) for stored in events] == [RunStarted, NodeScheduled]
    assert events[0].prev_hash == GENESIS
    assert all(stored.run_id == "run-1" and stored.at == T0 for stored in events)
    record = store.get_run("run-1")
    assert (record.id, record.workflow, record.spec_version) == ("run-1", "t", driver.spec.version)
    assert (record.status, record.input, record.origin) == ("running", driver.input, "flows/t.py")
    assert (record.output, record.reason) == (None, None)
    assert (record.created_at, record.last_seq) == (T0, 2)
    assert store.ready_count("run-1") == 1
    assert store.load_spec(driver.spec.version) == driver.spec  # stored with the run


def test_get_run_accepts_a_unique_prefix(store: Store) -> None:
    for run_id in ("abc123", "abd456", "x", "xy"):
        Driver(store, make_spec(), run_id).start()
    assert store.get_run("abc").id == "abc123"
    assert store.get_run("abd4").id == "abd456"
    assert store.get_run("abc123").id == "abc123"
    assert store.get_run("x").id == "x"  # an exact id wins over being a prefix of another


@pytest.mark.parametrize("prefix", ["ab", "zz", "abc1234", ""])
def test_get_run_refuses_an_ambiguous_or_unknown_prefix(store: Store, prefix: str) -> None:
    for run_id in ("abc123", "abd456"):
        Driver(store, make_spec(), run_id).start()
    with pytest.raises(RunNotFoundError):
        store.get_run(prefix)


def test_a_run_id_cannot_be_created_twice(store: Store) -> None:
    Driver(store, make_spec(), "run-1", {"first": True}).start()
    before = snapshot(store, "run-1")
    with pytest.raises(StoreError, match="exists") as raised:
        Driver(store, roots_spec("x", "y"), "run-1", {"first": False}).start()
    assert not isinstance(raised.value, RunNotFoundError)
    assert snapshot(store, "run-1") == before


# --- claiming -----------------------------------------------------------------------------


def test_claim_leases_ready_work_and_records_node_started(store: Store) -> None:
    driver = Driver(store, map_spec(), "run-1", {"items": ["p", "q", "r"]})
    driver.start()
    assert store.get_run("run-1").last_seq == 5  # started, expanded, three scheduled

    claimed = store.claim("w1", 10, T0 + 1, 30.0)

    assert sorted(key(c.lease) for c in claimed) == [("run-1", "fan", i, 1) for i in range(3)]
    assert {(c.lease.owner, c.lease.expires_at) for c in claimed} == {("w1", T0 + 31)}
    assert [c.started.seq for c in claimed] == [6, 7, 8]
    for c in claimed:
        assert c.started.event == NodeStarted(node="fan", attempt=1, worker="w1", item=c.lease.item)
    assert store.history("run-1", 5) == [c.started for c in claimed]
    assert store.get_run("run-1").last_seq == 8
    assert sorted(store.leases("run-1"), key=key) == sorted((c.lease for c in claimed), key=key)
    assert store.ready_count("run-1") == 3  # held, still on the queue until their outcome

    before = snapshot(store, "run-1")
    assert store.claim("w2", 10, T0 + 2, 30.0) == []
    assert snapshot(store, "run-1") == before


def test_an_expected_claim_takes_and_finds_the_same_as_one_that_looks_first(store: Store) -> None:
    """``expected`` (woken for work) only skips the read-only look: what is taken, and
    that nothing is taken twice or before it is available, stays the same."""
    for run_id in ("r1", "r2"):
        Driver(store, roots_spec("a", "b"), run_id).start()

    first = store.claim("w1", 3, T0 + 1, 30.0, expected=True)
    assert [key(c.lease) for c in first] == [
        ("r1", "a", None, 1), ("r1", "b", None, 1), ("r2", "a", None, 1),
    ]  # fmt: skip
    assert store.history("r1", 3) == [c.started for c in first[:2]]
    (last,) = store.claim("w2", 3, T0 + 1, 30.0, expected=True)
    assert key(last.lease) == ("r2", "b", None, 1)
    before = [snapshot(store, run) for run in ("r1", "r2")]
    assert store.claim("w3", 3, T0 + 2, 30.0, expected=True) == []
    assert [snapshot(store, run) for run in ("r1", "r2")] == before


def test_a_first_transition_can_lease_its_attempts_to_the_starting_worker(store: Store) -> None:
    driver = Driver(store, map_spec(), "run-1", {"items": ["p", "q", "r"]})
    first = driver.first().leasing(LeaseRequest("w1", 2, 30.0))

    committed = store.create_run(driver.spec, driver.input, first)

    assert [stored.seq for stored in committed.events] == [1, 2, 3, 4, 5]
    assert [c.lease for c in committed.claimed] == [
        Lease("run-1", "fan", i, 1, "w1", T0 + 30) for i in (0, 1)
    ]
    assert [c.started.seq for c in committed.claimed] == [6, 7]
    assert store.history("run-1", 5) == [c.started for c in committed.claimed]
    assert store.get_run("run-1").last_seq == 7
    assert store.ready_count("run-1") == 3
    (rest,) = store.claim("w2", 10, T0 + 1, 30.0)  # the one left over is free for anyone
    assert key(rest.lease) == ("run-1", "fan", 2, 1)


def test_an_outcome_can_lease_what_it_makes_ready_with_its_node_started(store: Store) -> None:
    driver = Driver(store, three_node_spec(), "run-1", {"n": 1})
    driver.start()
    (a,) = store.claim("w1", 10, T0, 30.0)
    outcome = driver.step([NodeSucceeded(node="a", attempt=1, output=5)], (a.lease,))
    assert [r.node for r in outcome.enqueued] == ["b", "c"]

    (result,) = store.commit([outcome.leasing(LeaseRequest("w1", 1))])

    assert result.error is None
    (b,) = result.claimed
    assert (b.lease.node, b.lease.owner, b.lease.expires_at) == ("b", "w1", driver.now + 30.0)
    assert b.started.seq == result.events[-1].seq + 1  # right after the outcome's own events
    assert store.history("run-1", result.events[-1].seq) == [b.started]
    assert [lease.node for lease in store.leases("run-1")] == ["b"]
    (c,) = store.claim("w2", 10, driver.now, 30.0)
    assert c.lease.node == "c"


def test_an_outcome_can_lease_attempts_of_its_run_already_queued(store: Store) -> None:
    driver = Driver(store, map_spec(), "run-1", {"items": ["p", "q", "r"]})
    driver.start()
    other = Driver(store, map_spec(), "run-2", {"items": ["x"]})
    other.start()
    (first,) = store.claim("w1", 1, T0, 30.0, run_id="run-1")
    outcome = driver.step(
        [NodeSucceeded(node="fan", attempt=1, output="P", item=0)], (first.lease,)
    )
    assert list(outcome.enqueued) == []  # the other items were queued when the map expanded

    (result,) = store.commit([outcome.leasing(LeaseRequest("w1", 5))])

    assert result.error is None
    assert [key(c.lease) for c in result.claimed] == [
        ("run-1", "fan", 1, 1),
        ("run-1", "fan", 2, 1),
    ]
    assert [c.started.seq for c in result.claimed] == [
        result.events[-1].seq + 1,
        result.events[-1].seq + 2,
    ]
    assert store.history("run-1", result.events[-1].seq) == [c.started for c in result.claimed]
    assert store.claim("w2", 10, driver.now, 30.0, run_id="run-1") == []
    (untouched,) = store.claim("w2", 10, driver.now, 30.0)  # another run's work is not taken
    assert key(untouched.lease) == ("run-2", "fan", 0, 1)


def test_claim_for_one_run_takes_only_that_runs_work(store: Store) -> None:
    for run_id in ("r1", "r2", "r3"):
        Driver(store, roots_spec("a", "b"), run_id).start()
    claimed = store.claim("w1", 10, T0 + 1, 30.0, run_id="r2")
    assert sorted(key(c.lease) for c in claimed) == [("r2", "a", None, 1), ("r2", "b", None, 1)]
    assert store.leases("r1") == store.leases("r3") == []
    assert store.get_run("r1").last_seq == store.get_run("r3").last_seq == 3


def test_claim_for_some_runs_takes_only_their_work(store: Store) -> None:
    for run_id in ("r1", "r2", "r3", "r4"):
        Driver(store, roots_spec("a", "b"), run_id).start()
    assert store.claim("w1", 10, T0 + 1, 30.0, run_ids=[]) == []
    assert [key(c.lease) for c in store.claim("w1", 10, T0 + 1, 30.0, run_ids=["r3"])] == [
        ("r3", "a", None, 1), ("r3", "b", None, 1),
    ]  # fmt: skip
    claimed = store.claim("w1", 10, T0 + 1, 30.0, run_ids=["r1", "r3", "r4"])
    assert sorted(key(c.lease) for c in claimed) == [
        (run, node, None, 1) for run in ("r1", "r4") for node in ("a", "b")
    ]
    assert store.leases("r2") == []


def test_claim_takes_the_highest_priority_then_the_oldest_first(store: Store) -> None:
    spec = parse_spec(
        {
            "name": "priorities",
            "nodes": [
                {"id": "low", "task": "m:f", "priority": -5},
                {"id": "high", "task": "m:f", "priority": 9},
                {"id": "plain", "task": "m:f"},
            ],
        }
    )
    for run_id, created in (("newer", T0 + 5), ("older", T0)):
        driver = Driver(store, spec, run_id)
        driver.now = created
        driver.start()

    order = [
        (c.lease.node, c.lease.run_id)
        for _ in range(6)
        for c in store.claim("w1", 1, T0 + 10, 30.0)
    ]

    assert order == [
        ("high", "older"), ("high", "newer"),
        ("plain", "older"), ("plain", "newer"),
        ("low", "older"), ("low", "newer"),
    ]  # fmt: skip


def test_claim_respects_the_limit(store: Store) -> None:
    Driver(store, map_spec(), "run-1", {"items": list(range(5))}).start()
    assert store.claim("w1", 0, T0 + 1, 30.0) == []
    first = store.claim("w1", 2, T0 + 1, 30.0)
    second = store.claim("w1", 2, T0 + 1, 30.0)
    rest = store.claim("w1", 10, T0 + 1, 30.0)
    assert [len(first), len(second), len(rest)] == [2, 2, 1]
    assert len({key(c.lease) for c in first + second + rest}) == 5
    assert store.claim("w1", 10, T0 + 1, 30.0) == []


@pytest.mark.parametrize(
    "scope",
    [{}, {"run_id": "run-1"}, {"run_ids": ["run-1", "other"]}],
    ids=["any-run", "one-run", "some-runs"],
)
def test_work_is_not_claimed_before_it_is_available(store: Store, scope: dict[str, Any]) -> None:
    driver = Driver(store, roots_spec("a", "b"), "run-1")
    first = driver.first()
    later = [
        dataclasses.replace(ready, available_at=T0 + 100) if ready.node == "b" else ready
        for ready in first.enqueued
    ]
    store.create_run(driver.spec, driver.input, with_enqueued(first, later))

    assert [c.lease.node for c in store.claim("w1", 10, T0 + 1, 30.0, **scope)] == ["a"]
    assert store.claim("w1", 10, T0 + 99.5, 30.0, **scope) == []
    assert [c.lease.node for c in store.claim("w1", 10, T0 + 100, 30.0, **scope)] == ["b"]


def test_claim_by_queue_takes_only_those_queues(store: Store) -> None:
    spec = parse_spec(
        {
            "name": "queues",
            "nodes": [
                {"id": "bulk", "kind": "map", "task": "m:g", "items": "input.items",
                 "item_arg": "i", "queue": "bulk"},
                {"id": "solo", "task": "m:f", "queue": "fast"},
            ],
        }
    )  # fmt: skip
    Driver(store, spec, "run-1", {"items": [1, 2, 3]}).start()
    fast = store.claim("w1", 10, T0 + 1, 30.0, queues=["fast"])
    assert [key(c.lease) for c in fast] == [("run-1", "solo", None, 1)]
    bulk = store.claim("w1", 10, T0 + 1, 30.0, queues=["bulk", "other"])
    assert sorted(key(c.lease) for c in bulk) == [("run-1", "bulk", i, 1) for i in range(3)]


def test_claim_by_queue_is_not_starved_by_other_queues(store: Store) -> None:
    spec = parse_spec(
        {
            "name": "queues",
            "nodes": [
                {"id": "bulk", "kind": "map", "task": "m:g", "items": "input.items",
                 "item_arg": "i", "queue": "bulk", "priority": 10},
                {"id": "solo", "task": "m:f"},
            ],
        }
    )  # fmt: skip
    Driver(store, spec, "run-1", {"items": list(range(10))}).start()
    claimed = store.claim("w1", 1, T0 + 1, 30.0, queues=["default"])
    assert [key(c.lease) for c in claimed] == [("run-1", "solo", None, 1)]


# --- committing ---------------------------------------------------------------------------


def test_a_transition_from_a_stale_state_is_refused_and_writes_nothing(store: Store) -> None:
    driver = Driver(store, roots_spec("a", "b"), "run-1")
    driver.start()
    cancel = driver.step([RunCancelled(reason="stop")])  # built on the state at event 3
    driver.claim("w1")  # ... then another process moves the run on
    before = snapshot(store, "run-1")

    (result,) = store.commit([cancel])

    assert isinstance(result.error, ConflictError)
    assert result.events == []
    assert snapshot(store, "run-1") == before


@pytest.mark.parametrize(
    "group",
    [
        pytest.param(False, id="alone"),
        pytest.param(True, id="in-a-group"),
    ],
)
@pytest.mark.parametrize("refusal", ["stale", "second-lease-lost"])
def test_a_refused_outcome_leaves_its_lease_held(store: Store, refusal: str, group: bool) -> None:
    """A worker's outcome refused for any reason must not release the attempt: the worker
    reloads and retries a ``ConflictError``, which needs the lease still held."""
    driver = Driver(store, roots_spec("a", "b"), "run-1")
    driver.start()
    other = Driver(store, make_spec(), "other")
    other.start()
    (a,) = driver.claim("w1", limit=1)
    (b,) = driver.claim("w1", limit=1)
    if refusal == "stale":
        outcome = dataclasses.replace(
            driver.step([NodeSucceeded(node=a.lease.node, attempt=1, output=1)], (a.lease,)),
            expected_seq=b.started.seq - 1,  # the state before the second claim
        )
        expected: type[Exception] = ConflictError
    else:
        lost = dataclasses.replace(b.lease, owner="w2")
        outcome = driver.step(
            [NodeSucceeded(node=a.lease.node, attempt=1, output=1)], (a.lease, lost)
        )
        expected = LeaseLostError
    before = snapshot(store, "run-1")

    batch = [outcome, other.step([RunCancelled(reason="x")])] if group else [outcome]
    results = store.commit(batch)

    assert isinstance(results[0].error, expected)
    assert snapshot(store, "run-1") == before


@pytest.mark.parametrize(
    "change",
    [{"owner": "w2"}, {"attempt": 2}, {"node": "b"}, {"run_id": "other"}],
    ids=["other-owner", "other-attempt", "other-node", "other-run"],
)
def test_an_outcome_whose_lease_is_not_held_is_refused(
    store: Store, change: dict[str, Any]
) -> None:
    Driver(store, make_spec(), "other").start()
    driver = Driver(store, make_spec(), "run-1")
    driver.start()
    (a,) = driver.claim("w1")
    lease = dataclasses.replace(a.lease, **change)
    outcome = driver.step([NodeSucceeded(node="a", attempt=1, output="A")], (lease,))
    before = snapshot(store, "run-1"), snapshot(store, "other")

    (result,) = store.commit([outcome])

    assert isinstance(result.error, LeaseLostError)
    assert result.events == []
    assert (snapshot(store, "run-1"), snapshot(store, "other")) == before


def test_one_refused_transition_does_not_stop_the_others(store: Store) -> None:
    drivers = [Driver(store, make_spec(), f"r{n}") for n in range(1, 4)]
    leases = []
    for driver in drivers:
        driver.start()
        (claimed,) = driver.claim("w1")
        leases.append(claimed.lease)
    r1, r2, r3 = drivers

    def outcome(driver: Driver, lease: Lease) -> Transition:
        return driver.step([NodeSucceeded(node="a", attempt=1, output=driver.run_id)], (lease,))

    stale_cancel = r3.step([RunCancelled(reason="too late")])
    batch = [
        outcome(r1, leases[0]),
        outcome(r2, dataclasses.replace(leases[1], owner="w9")),
        outcome(r3, leases[2]),
        stale_cancel,  # built before r3's outcome, which commits first
    ]
    before_r2 = snapshot(store, "r2")

    results = store.commit(batch)

    assert [result.transition for result in results] == batch
    assert [type(result.error) for result in results] == [
        type(None), LeaseLostError, type(None), ConflictError,
    ]  # fmt: skip
    for result in (results[0], results[2]):
        run_id = result.transition.run_id
        assert result.events
        assert store.history(run_id, 3) == result.events
        assert store.get_run(run_id).status == "running"
        assert [c.lease.node for c in store.claim("w2", 10, T0 + 50, 30.0, run_id=run_id)] == ["b"]
    assert results[1].events == results[3].events == []
    assert snapshot(store, "r2") == before_r2


# --- ending a run -------------------------------------------------------------------------


@pytest.mark.parametrize("end", ["succeeded", "failed", "cancelled"])
def test_ending_a_run_empties_its_queue_and_timers(store: Store, end: str) -> None:
    spec = parse_spec(
        {
            "name": "two",
            "nodes": [{"id": "a", "task": "m:f"}, {"id": "b", "task": "m:f"}],
            "outputs": {"sum": "nodes.a.output + nodes.b.output"},
        }
    )
    driver = Driver(store, spec, "run-1")
    driver.start()
    Driver(store, spec, "bystander").start()
    add_timers(store, "run-1", driver.tick(), Timer("run-1", "deadline", T0 + 3600))
    add_timers(store, "bystander", driver.tick(), Timer("bystander", "deadline", T0 + 3600))
    a, b = sorted(driver.claim("w1"), key=lambda claimed: claimed.lease.node)

    if end == "succeeded":
        driver.succeed(a.lease, 1)
        driver.succeed(b.lease, 2)
    elif end == "failed":
        driver.fail(a.lease, "boom")
    else:
        driver.cancel("no longer needed")

    record = store.get_run("run-1")
    assert record.status == end
    assert (record.output, record.reason) == {
        "succeeded": ({"sum": 3}, None),
        "failed": (None, "node 'a' failed: Boom: boom"),
        "cancelled": (None, "no longer needed"),
    }[end]
    assert store.ready_count("run-1") == 0
    assert store.leases("run-1") == []
    assert [t.run_id for t in store.due_timers(T0 + 10_000, 10)] == ["bystander"]
    assert store.ready_count("bystander") == 2
    if end != "succeeded":  # the attempt still running ends too late to be recorded
        late = NodeSucceeded(node="b", attempt=1, output=2)
        (result,) = store.commit([driver.step([late], (b.lease,))])
        assert isinstance(result.error, LeaseLostError)


# --- leases -------------------------------------------------------------------------------


def test_renew_extends_every_lease_of_the_owner(store: Store) -> None:
    Driver(store, roots_spec("a", "b", "c"), "run-1").start()
    mine = store.claim("w1", 2, T0 + 1, 30.0)
    (theirs,) = store.claim("w2", 2, T0 + 2, 30.0)
    assert sorted(store.lease_owners()) == ["w1", "w2"]

    assert store.renew("w1", T0 + 20, 30.0) == 2
    assert store.renew("nobody", T0 + 20, 30.0) == 0

    expiry = {lease.node: (lease.owner, lease.expires_at) for lease in store.leases("run-1")}
    assert expiry == {
        **{c.lease.node: ("w1", T0 + 50) for c in mine},
        theirs.lease.node: ("w2", T0 + 32),
    }
    (reclaimed,) = store.reclaim(T0 + 40)  # only w2's lease has expired
    assert reclaimed.event == NodeReclaimed(
        node=theirs.lease.node, attempt=1, owner="w2", reason="lease expired"
    )
    assert [lease.owner for lease in store.leases("run-1")] == ["w1", "w1"]


def test_reclaim_puts_back_attempts_whose_lease_expired(store: Store) -> None:
    driver = Driver(store, make_spec(), "run-1")
    driver.start()
    (a,) = store.claim("w1", 10, T0 + 1, 30.0)
    assert store.reclaim(T0 + 30) == []  # not expired yet

    reclaimed = store.reclaim(T0 + 32)

    event = NodeReclaimed(node="a", attempt=1, owner="w1", reason="lease expired")
    assert [(stored.seq, stored.at, stored.event) for stored in reclaimed] == [(4, T0 + 32, event)]
    assert store.history("run-1", 3) == reclaimed
    assert store.leases("run-1") == []
    assert store.ready_count("run-1") == 1
    assert store.reclaim(T0 + 33) == []

    (again,) = store.claim("w2", 10, T0 + 33, 30.0)
    assert key(again.lease) == key(a.lease)  # the same attempt, by number
    assert again.lease.owner == "w2"
    assert again.started.seq == 5

    driver.now = T0 + 34
    late = driver.step([NodeSucceeded(node="a", attempt=1, output="old")], (a.lease,))
    (refused,) = store.commit([late])
    assert isinstance(refused.error, LeaseLostError)
    driver.succeed(again.lease, "new")
    assert store.get_run("run-1").last_seq == 7  # succeeded, b scheduled


def test_reclaim_takes_back_the_attempts_of_dead_owners(store: Store) -> None:
    Driver(store, roots_spec("a", "b", "c"), "run-1").start()
    (first,) = store.claim("w1", 1, T0 + 1, 30.0)
    (second,) = store.claim("w2", 1, T0 + 1, 30.0)
    (third,) = store.claim("w3", 1, T0 + 1, 30.0)

    reclaimed = store.reclaim(T0 + 2, dead_owners=["w1", "w3"], reason="process 42 exited")

    assert sorted((stored.event for stored in reclaimed), key=str) == sorted(
        (
            NodeReclaimed(node=c.lease.node, attempt=1, owner=c.lease.owner,
                          reason="process 42 exited")
            for c in (first, third)
        ),
        key=str,
    )  # fmt: skip
    assert [lease.owner for lease in store.leases("run-1")] == ["w2"]
    assert sorted(store.lease_owners()) == ["w2"]
    (default_reason,) = store.reclaim(T0 + 3, dead_owners=["w2"])
    assert isinstance(default_reason.event, NodeReclaimed)
    assert default_reason.event.reason  # says why, even when the caller did not
    retaken = store.claim("w4", 10, T0 + 4, 30.0)
    assert sorted(key(c.lease) for c in retaken) == sorted(
        key(c.lease) for c in (first, second, third)
    )


# --- timers -------------------------------------------------------------------------------


def test_timers_become_due_earliest_first(store: Store) -> None:
    Driver(store, make_spec(), "r1").start()
    Driver(store, make_spec(), "r2").start()
    late = Timer("r1", "late", T0 + 100, {"wake": ["up", 1]})
    early = Timer("r1", "early", T0 + 50)
    middle = Timer("r2", "retry:a", T0 + 75, "again")
    add_timers(store, "r1", T0 + 1, late, early)
    add_timers(store, "r2", T0 + 1, middle)

    assert store.due_timers(T0 + 49, 10) == []
    assert store.due_timers(T0 + 50, 10) == [early]
    assert store.due_timers(T0 + 1000, 10) == [early, middle, late]
    assert store.due_timers(T0 + 1000, 2) == [early, middle]

    add_timers(store, "r1", T0 + 2, clear=("early",))
    assert store.due_timers(T0 + 1000, 10) == [middle, late]
    moved = dataclasses.replace(late, due_at=T0 + 10)
    add_timers(store, "r1", T0 + 3, moved)  # the same key again: replaced, not added
    assert store.due_timers(T0 + 1000, 10) == [moved, middle]


def test_writes_apply_in_the_stores_order_whatever_order_they_are_listed_in(
    store: Store,
) -> None:
    Driver(store, make_spec(), "r1").start()
    fired = Timer("r1", "wait:a", T0 + 50)
    kept = Timer("r1", "other", T0 + 60)
    # listed clear-first: the store still sets before it clears, so the key ends cleared
    last = store.get_run("r1").last_seq
    writes = [ClearTimer("wait:a"), SetTimer(fired), SetTimer(kept)]
    (result,) = store.commit([Transition("r1", last, T0 + 1, events=[], writes=writes)])

    assert result.error is None
    assert store.due_timers(T0 + 1000, 10) == [kept]


# --- listing runs -------------------------------------------------------------------------


def test_list_runs_is_newest_first_and_filters(store: Store) -> None:
    for n, (run_id, name) in enumerate([("r1", "t"), ("r2", "other"), ("r3", "t"), ("r4", "t")]):
        driver = Driver(store, make_spec(name), run_id)
        driver.now = T0 + 10 * n
        driver.start()
        if run_id == "r3":
            driver.cancel()

    def ids(**filters: Any) -> list[str]:
        return [record.id for record in store.list_runs(**filters)]

    assert ids() == ["r4", "r3", "r2", "r1"]
    assert ids(status="running") == ["r4", "r2", "r1"]
    assert ids(status="cancelled") == ["r3"]
    assert ids(workflow="t") == ["r4", "r3", "r1"]
    assert ids(workflow="t", status="running") == ["r4", "r1"]
    assert ids(workflow="nope") == []
    assert ids(limit=2) == ["r4", "r3"]
    assert ids(status="running", limit=1) == ["r4"]
    assert store.list_runs() == [store.get_run(run_id) for run_id in ("r4", "r3", "r2", "r1")]


# --- history ------------------------------------------------------------------------------


def test_history_after_a_sequence_number(store: Store) -> None:
    finished_three_node_run(store)
    everything = store.history("run-1")
    assert [stored.seq for stored in everything] == list(range(1, 12))
    assert store.history("run-1", 0) == everything
    assert store.history("run-1", 4) == everything[4:]
    assert store.history("run-1", 10) == everything[10:]
    assert store.history("run-1", 11) == []
    assert store.history("no-such-run") == []


def test_first_event_is_the_first_of_the_history(store: Store) -> None:
    finished_three_node_run(store)
    assert store.first_event("run-1") == store.history("run-1")[0]
    assert store.first_event("no-such-run") is None


def test_history_returns_the_events_exactly_as_committed(store: Store) -> None:
    driver = Driver(store, map_spec(), "run-1", {"items": ["é", 0.1, None, True, {"k": [1]}]})
    recorded: list[StoredEvent] = list(driver.start())
    claimed = driver.claim("w1", limit=3)
    recorded += [c.started for c in claimed]
    recorded += driver.succeed(claimed[0].lease, {"text": "héllo ✓", "score": 0.1}).events
    recorded += driver.fail(claimed[1].lease, "it broke: ünïcode").events  # the map fails
    recorded += store.reclaim(driver.tick(), dead_owners=["w1"])  # nothing left to reclaim

    assert isinstance(recorded[1].event, MapExpanded)
    assert store.get_run("run-1").status == "failed"
    assert [stored.seq for stored in recorded] == list(range(1, len(recorded) + 1))
    assert store.history("run-1") == recorded


# --- SQLite: migrations -------------------------------------------------------------------

#: the newest schema version this keel knows
NEWEST = len(load_migrations("keel.store.sqlite.migrations"))


def test_reopening_a_database_does_not_apply_migrations_again(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    first = SQLiteStore(path)
    Driver(first, make_spec(), "run-1").start()
    first.close()

    again = SQLiteStore(path)
    try:
        assert again.schema_version() == NEWEST
        assert raw_sql(path, "SELECT version FROM schema_migrations") == [
            (version,) for version in range(1, NEWEST + 1)
        ]
        assert again.get_run("run-1").last_seq == 2
    finally:
        again.close()


def test_a_database_from_a_newer_keel_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    SQLiteStore(path).close()
    raw_sql(path, "INSERT INTO schema_migrations (version, name) VALUES (99, 'future')")

    with pytest.raises(StoreError, match="upgrade keel"):
        SQLiteStore(path)
    assert raw_sql(path, "SELECT version FROM schema_migrations") == [
        *((version,) for version in range(1, NEWEST + 1)),
        (99,),
    ]


def test_a_version_1_database_is_upgraded_with_its_queue_and_leases(tmp_path: Path) -> None:
    """0002 rebuilds the ready queue: queued and held attempts must survive it."""
    path = tmp_path / "keel.db"
    (initial,) = [m for m in load_migrations("keel.store.sqlite.migrations") if m.version == 1]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(initial.sql)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO schema_migrations VALUES (1, 'initial')")
    conn.executemany(
        "INSERT INTO ready VALUES (?, ?, ?, ?, 'default', 0, 1.0, ?, ?)",
        [("r", "a", -1, 1, "w1", 31.0), ("r", "b", 0, 2, None, None)],
    )
    conn.close()

    store = SQLiteStore(path)
    try:
        assert store.schema_version() == NEWEST
        assert store.leases("r") == [Lease("r", "a", None, 1, "w1", 31.0)]
        assert store.ready_count("r") == 2
        (claimed,) = raw_sql(path, "SELECT node, item, attempt FROM ready WHERE owner IS NULL")
        assert claimed == ("b", 0, 2)
        assert raw_sql(path, "SELECT name FROM sqlite_master WHERE name = 'ready_held'") == []
    finally:
        store.close()


# --- concurrency --------------------------------------------------------------------------


def assert_each_claimed_once(store: Store, runs: list[str], claims: list[list[Key]]) -> None:
    every = [attempt for claimed in claims for attempt in claimed]
    assert len(every) == len(set(every)), "an attempt was claimed twice"
    expected = {(run, "fan", i, 1) for run in runs for i in range(100)}
    assert set(every) == expected
    started = [
        stored.event
        for run in runs
        for stored in store.history(run)
        if isinstance(stored.event, NodeStarted)
    ]
    assert len(started) == len(expected)


def test_threads_sharing_a_store_never_claim_the_same_attempt(store: Store) -> None:
    runs = ["r1", "r2"]
    for run_id in runs:
        Driver(store, map_spec(), run_id, {"items": list(range(100))}).start()
    claims: list[list[Key]] = [[] for _ in range(4)]
    got: list[bool] = [True] * len(claims)
    finished = threading.Event()

    def end_of_round() -> None:  # runs once per round, before any thread goes on
        if not any(got):
            finished.set()

    # every thread claims once per round, so that they all contend for every round's work
    barrier = threading.Barrier(len(claims), action=end_of_round)

    def work(n: int) -> None:
        try:
            while not finished.is_set():
                batch = store.claim(f"thread-{n}", 3, T0 + 1, 600.0)
                got[n] = bool(batch)
                claims[n] += [key(c.lease) for c in batch]
                barrier.wait()
        except BaseException:
            barrier.abort()  # the others stop too, instead of waiting forever
            raise

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(claims))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert_each_claimed_once(store, runs, claims)
    assert all(claims), "every thread took part"


CLAIMER = """
import json, sys, time
from keel.store.sqlite import SQLiteStore

store = SQLiteStore(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
claimed = []
while batch := store.claim(sys.argv[2], 2, float(sys.argv[3]), 600.0):
    claimed += [[c.lease.run_id, c.lease.node, c.lease.item, c.lease.attempt] for c in batch]
    time.sleep(0.001)  # out of the lock for a moment, so that the processes interleave
store.close()
print(json.dumps(claimed), flush=True)
"""


def test_processes_sharing_a_file_never_claim_the_same_attempt(sqlite_store: SQLiteStore) -> None:
    runs = ["r1", "r2"]
    for run_id in runs:
        Driver(sqlite_store, map_spec(), run_id, {"items": list(range(100))}).start()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(sqlite_store.path), f"proc-{n}", str(T0 + 1)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    try:
        for process in processes:  # every one has opened the store before any claims
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    claims = [[(r, n, i, a) for r, n, i, a in json.loads(out)] for out, _ in outputs]
    assert_each_claimed_once(sqlite_store, runs, claims)


# --- a transition commits only on top of exactly the state it was decided from -----------


def test_a_later_transition_of_a_run_refused_earlier_in_the_same_commit_is_refused(
    store: Store,
) -> None:
    """The interleaving that hung runs under several workers: a worker decides two
    outcomes of one run in one group commit, the second on top of the first; meanwhile
    another process appends exactly as many events as the first adds. The first is
    refused (the run moved), and the second, whose sequence number now matches by
    chance, must be refused too: it was decided on a state the store never had."""
    driver = Driver(store, map_spec(), "run-1", {"items": [1, 2, 3, 4]})
    driver.start()
    first, second = driver.claim("w1", limit=2)
    state = driver.state()
    now = driver.tick()
    outcomes = [
        advance("run-1", state, [NodeSucceeded(node="fan", attempt=1, output=n, item=c.lease.item)],
                now, (c.lease,))
        for n, c in enumerate((first, second))
    ]  # fmt: skip
    assert outcomes[1].expected_head is None  # decided on top of the first, not committed
    assert outcomes[1].expected_seq == outcomes[0].expected_seq + len(outcomes[0].events)
    # another process appends as many events as the first outcome does
    taken = store.claim("w2", len(outcomes[0].events), driver.tick(), 30.0, run_id="run-1")
    assert len(taken) == len(outcomes[0].events)
    before = snapshot(store, "run-1")

    results = store.commit(outcomes)

    assert [type(result.error) for result in results] == [ConflictError, ConflictError]
    assert snapshot(store, "run-1") == before
    # decided again on the state the store has, both outcomes go in
    again = driver.state()
    retry = [
        advance("run-1", again, [NodeSucceeded(node="fan", attempt=1, output=n, item=c.lease.item)],
                driver.tick(), (c.lease,))
        for n, c in enumerate((first, second))
    ]  # fmt: skip
    assert [result.error for result in store.commit(retry)] == [None, None]


def test_a_transition_is_refused_when_the_run_has_other_events_at_the_same_number(
    store: Store,
) -> None:
    """Not a count: a transition whose state ends with another event than the store's
    at the same sequence number is refused."""
    driver = Driver(store, roots_spec("a", "b"), "run-1")
    driver.start()
    cancel = driver.step([RunCancelled(reason="stop")])
    assert cancel.expected_head == store.get_run("run-1").head_hash
    (claimed,) = driver.claim("w1", limit=1)  # the run moves on by one event elsewhere
    forged = dataclasses.replace(cancel, expected_seq=claimed.started.seq)
    before = snapshot(store, "run-1")

    (result,) = store.commit([forged])

    assert isinstance(result.error, ConflictError)
    assert snapshot(store, "run-1") == before


def test_stored_events_carry_the_hash_the_next_event_links_to(store: Store) -> None:
    driver = finished_three_node_run(store)
    history = store.history(driver.run_id)
    for stored, following in itertools.pairwise(history):
        assert stored.hash == following.prev_hash
    assert history[-1].hash == store.get_run(driver.run_id).head_hash
