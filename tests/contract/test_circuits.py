"""The store contract for circuit breakers: counting outcomes, opening, the probe, closing.

A circuit is named after a resource that attempts of many runs need. The store counts
the outcomes transitions carry (``Transition.circuits``); after ``failures`` failures
in a row it opens the circuit for ``cooldown`` seconds, during which ``claim`` (and the
leasing of ``commit``) leaves the attempts that need it on the queue. After the
cool-down exactly one attempt is handed out as the probe: its success closes the
circuit, its failure opens it again. Every time here is explicit, no clock is read.

Most tests use ``Calls``: runs of one node each, ``call``, behind a named circuit (or
none), so that a failed attempt ends only its own run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from keel.engine import ErrorInfo, NodeFailed, NodeSucceeded
from keel.errors import ConflictError, LeaseLostError
from keel.runtime.runs import advance
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store import CircuitOutcome, CircuitState, Lease, Store, Transition
from keel.store.sqlite import SQLiteStore
from keel.store.writes import CountCircuit, LeaseRequest
from tests.contract.conftest import T0, Driver

#: consecutive failures that open a circuit, and how long it then stays open
THRESHOLD = 2
COOLDOWN = 60.0
LEASE_FOR = 30.0

#: every run id the tests use, for claims restricted to runs
RUNS = ["r1", "r2", "r3", "r4", "r5", "billing", "plain"]
SCOPES = [
    pytest.param({}, id="any-run"),
    pytest.param({"run_ids": RUNS}, id="some-runs"),
    pytest.param({"queues": ["default"]}, id="some-queues"),
    pytest.param({"run_ids": RUNS, "queues": ["default"]}, id="runs-and-queues"),
]


def call_spec(circuit: str | None) -> WorkflowSpec:
    node: dict[str, Any] = {"id": "call", "task": "m:f"}
    if circuit is not None:
        node["circuit"] = circuit
    return parse_spec({"name": f"call-{circuit or 'nothing'}", "nodes": [node]})


class Calls:
    """Runs of one attempt each that need a circuit, moved on at explicit times."""

    def __init__(self, store: Store, failures: int = THRESHOLD, cooldown: float = COOLDOWN) -> None:
        self.store = store
        self.failures = failures
        self.cooldown = cooldown
        self.drivers: dict[str, Driver] = {}
        self.circuit_of: dict[str, str | None] = {}
        self.held: dict[str, Lease] = {}

    def queue(self, *run_ids: str, circuit: str | None = "crm", at: float = T0) -> None:
        for run_id in run_ids:
            driver = Driver(self.store, call_spec(circuit), run_id)
            driver.now = at
            driver.start()
            self.drivers[run_id] = driver
            self.circuit_of[run_id] = circuit

    def claim(self, now: float, limit: int = 10, **scope: Any) -> list[str]:
        """Claim at ``now``; the ids of the runs whose attempt was leased."""
        claimed = self.store.claim("w1", limit, now, LEASE_FOR, **scope)
        for item in claimed:
            self.held[item.lease.run_id] = item.lease
        return sorted(item.lease.run_id for item in claimed)

    def outcome(self, run_id: str, ok: bool, at: float, lease: Lease | None = None) -> Transition:
        """The transition recording how the run's held attempt ended, counted against
        its circuit (a failure as a retryable error: the resource is down)."""
        lease = lease or self.held[run_id]
        event: NodeSucceeded | NodeFailed
        if ok:
            event = NodeSucceeded(node="call", attempt=lease.attempt, output="ok")
        else:
            error = ErrorInfo(type="ConnectionError", message="down", retryable=True)
            event = NodeFailed(node="call", attempt=lease.attempt, error=error)
        transition = advance(run_id, self.drivers[run_id].state(), [event], at, (lease,))
        name = self.circuit_of[run_id]
        assert name is not None
        counted = CircuitOutcome(name, ok, self.failures, self.cooldown)
        return transition.adding(CountCircuit(counted))

    def report(self, run_id: str, ok: bool, at: float) -> None:
        (result,) = self.store.commit([self.outcome(run_id, ok, at)])
        assert result.error is None

    def trip(self, at: float = T0 + 1) -> float:
        """Open ``crm`` with failures of runs r1 and r2 (the second at ``at + 1``);
        returns when it closes again."""
        self.queue("r1", "r2")
        assert self.claim(at, run_ids=["r1", "r2"]) == ["r1", "r2"]
        self.report("r1", False, at)
        self.report("r2", False, at + 1)
        return at + 1 + self.cooldown


def crm(
    failures: int, open_until: float | None, probe_until: float | None, at: float
) -> list[CircuitState]:
    return [CircuitState("crm", failures, open_until, probe_until, at)]


# --- counting -------------------------------------------------------------------------------


def test_no_outcome_counted_means_no_circuit(store: Store) -> None:
    calls = Calls(store)
    calls.queue("r1", "r2")

    assert store.circuits() == []
    assert calls.claim(T0 + 1) == ["r1", "r2"]


def test_failures_below_the_threshold_keep_the_circuit_closed(store: Store) -> None:
    calls = Calls(store, failures=3)
    calls.queue("r1", "r2")
    calls.queue("r3", "r4", at=T0 + 2)
    assert calls.claim(T0 + 1) == ["r1", "r2"]

    calls.report("r1", False, T0 + 3)
    calls.report("r2", False, T0 + 4)

    assert store.circuits() == crm(2, None, None, T0 + 4)
    assert calls.claim(T0 + 5) == ["r3", "r4"]


def test_a_success_resets_the_count_of_failures_in_a_row(store: Store) -> None:
    calls = Calls(store, failures=2)
    calls.queue("r1", "r2", "r3")
    calls.queue("r4", at=T0 + 10)
    assert calls.claim(T0 + 1, run_ids=["r1", "r2", "r3"]) == ["r1", "r2", "r3"]

    calls.report("r1", False, T0 + 2)
    calls.report("r2", True, T0 + 3)
    assert store.circuits() == []
    calls.report("r3", False, T0 + 4)

    assert store.circuits() == crm(1, None, None, T0 + 4)
    assert calls.claim(T0 + 11) == ["r4"]


def test_a_threshold_of_one_opens_on_the_first_failure(store: Store) -> None:
    calls = Calls(store, failures=1)
    calls.queue("r1", "r2")
    assert calls.claim(T0 + 1, run_id="r1") == ["r1"]

    calls.report("r1", False, T0 + 2)

    assert store.circuits() == crm(1, T0 + 2 + COOLDOWN, None, T0 + 2)
    assert calls.claim(T0 + 3) == []


def test_circuits_are_counted_by_name(store: Store) -> None:
    calls = Calls(store, failures=1)
    calls.queue("r1", "r2")
    calls.queue("billing", "plain", circuit="billing")
    assert calls.claim(T0 + 1, run_ids=["r1", "billing"]) == ["billing", "r1"]

    calls.report("billing", False, T0 + 2)

    (billing,) = store.circuits()
    assert (billing.name, billing.open_until) == ("billing", T0 + 2 + COOLDOWN)
    calls.report("r1", True, T0 + 3)  # closing crm leaves billing open
    assert [c.name for c in store.circuits()] == ["billing"]
    assert calls.claim(T0 + 4) == ["r2"]


# --- open ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", SCOPES)
def test_an_open_circuit_holds_back_only_the_attempts_that_need_it(
    store: Store, scope: dict[str, Any]
) -> None:
    calls = Calls(store)
    open_until = calls.trip()
    calls.queue("r3")
    calls.queue("billing", circuit="billing")
    calls.queue("plain", circuit=None)

    assert store.circuits() == crm(THRESHOLD, open_until, None, T0 + 2)
    assert calls.claim(T0 + 3, run_id="r3") == []
    assert calls.claim(T0 + 3, **scope) == ["billing", "plain"]
    assert calls.claim(open_until - 0.5, **scope) == []
    assert store.ready_count("r3") == 1
    assert store.leases("r3") == []


def test_an_open_circuit_holds_back_attempts_queued_before_it_opened(store: Store) -> None:
    calls = Calls(store)
    calls.queue("r3", "r4")  # waiting since before the failures
    open_until = calls.trip()

    assert calls.claim(T0 + 3) == []
    assert calls.claim(open_until - 0.5) == []
    assert store.circuits() == crm(THRESHOLD, open_until, None, T0 + 2)


# --- the probe -------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", SCOPES)
def test_after_the_cooldown_one_attempt_is_let_through_as_the_probe(
    store: Store, scope: dict[str, Any]
) -> None:
    calls = Calls(store)
    open_until = calls.trip()
    calls.queue("r3", "r4")

    (probe,) = calls.claim(open_until, **scope)

    assert probe in ("r3", "r4")
    (state,) = store.circuits()
    assert (state.open_until, state.probe_until) == (open_until, open_until + LEASE_FOR)
    assert calls.claim(open_until + 1, **scope) == []
    assert calls.claim(open_until + LEASE_FOR - 0.5) == []


def test_a_probe_that_never_reports_holds_the_others_back_only_for_its_lease(
    store: Store,
) -> None:
    calls = Calls(store)
    open_until = calls.trip()
    calls.queue("r3", "r4")
    (first,) = calls.claim(open_until)

    (second,) = calls.claim(open_until + LEASE_FOR)

    assert {first, second} == {"r3", "r4"}
    (state,) = store.circuits()
    assert state.probe_until == open_until + 2 * LEASE_FOR


def test_a_probe_whose_lease_is_renewed_still_holds_the_others_back(store: Store) -> None:
    calls = Calls(store)
    open_until = calls.trip()
    calls.queue("r3", "r4")
    (probe,) = calls.claim(open_until)

    assert store.renew("w1", open_until + 20, LEASE_FOR) == 1

    assert [lease.run_id for lease in store.leases(probe)] == [probe]
    assert calls.claim(open_until + LEASE_FOR + 1) == []


def test_a_probe_does_not_cost_a_claim_the_other_free_work(store: Store) -> None:
    calls = Calls(store)
    open_until = calls.trip()
    calls.queue("r3", "r4")  # queued first, so ahead of the plain call
    calls.queue("plain", circuit=None, at=T0 + 10)

    claimed = calls.claim(open_until, limit=2)

    assert "plain" in claimed
    assert len(claimed) == 2


def test_the_probes_success_closes_the_circuit(store: Store) -> None:
    calls = Calls(store)
    open_until = calls.trip()
    calls.queue("r3", "r4", "r5")
    (probe,) = calls.claim(open_until)

    calls.report(probe, True, open_until + 1)

    assert store.circuits() == []
    rest = calls.claim(open_until + 2)
    assert rest == sorted({"r3", "r4", "r5"} - {probe})


def test_the_probes_failure_opens_the_circuit_for_another_cooldown(store: Store) -> None:
    calls = Calls(store)
    open_until = calls.trip()
    calls.queue("r3", "r4", "r5")
    (probe,) = calls.claim(open_until)
    failed_at = open_until + 5

    calls.report(probe, False, failed_at)

    assert store.circuits() == crm(THRESHOLD + 1, failed_at + COOLDOWN, None, failed_at)
    assert calls.claim(failed_at + 1) == []
    assert calls.claim(failed_at + COOLDOWN - 0.5) == []
    (second_probe,) = calls.claim(failed_at + COOLDOWN)
    assert second_probe != probe


# --- leasing inside commit ------------------------------------------------------------------


def two_calls_spec() -> WorkflowSpec:
    """``first`` (no circuit, claimed first) and ``crm`` (behind the circuit)."""
    return parse_spec(
        {
            "name": "two-calls",
            "nodes": [
                {"id": "first", "task": "m:f", "priority": 1},
                {"id": "crm", "task": "m:f", "circuit": "crm"},
            ],
        }
    )


def test_a_new_attempt_that_needs_a_circuit_is_not_leased_by_the_transition_that_makes_it(
    store: Store,
) -> None:
    driver = Driver(store, two_calls_spec(), "run-1")
    first = driver.first().leasing(LeaseRequest("w1", 5))

    committed = store.create_run(driver.spec, driver.input, first)

    assert [c.lease.node for c in committed.claimed] == ["first"]
    assert store.ready_count("run-1") == 2
    assert [c.lease.node for c in store.claim("w1", 5, T0 + 1, LEASE_FOR)] == ["crm"]


def test_an_outcome_leasing_queued_work_leaves_an_open_circuits_attempts(store: Store) -> None:
    calls = Calls(store)
    open_until = calls.trip()
    driver = Driver(store, two_calls_spec(), "run-1")
    driver.now = T0 + 3
    driver.start()
    (first,) = store.claim("w1", 1, T0 + 4, LEASE_FOR, run_id="run-1")
    assert first.lease.node == "first"
    done = NodeSucceeded(node="first", attempt=1, output=1)

    outcome = advance("run-1", driver.state(), [done], T0 + 5, (first.lease,))
    committed = driver.commit(outcome.leasing(LeaseRequest("w1", 5)))

    assert committed.claimed == []
    assert store.ready_count("run-1") == 1
    assert store.circuits() == crm(THRESHOLD, open_until, None, T0 + 2)


def test_an_outcome_leasing_queued_work_after_the_cooldown_takes_one_probe(
    store: Store,
) -> None:
    calls = Calls(store)
    open_until = calls.trip()
    driver = Driver(store, two_calls_spec(), "run-1")
    driver.now = T0 + 3
    driver.start()
    calls.queue("r3", at=T0 + 3)
    (first,) = store.claim("w1", 1, T0 + 4, LEASE_FOR, run_id="run-1")
    done = NodeSucceeded(node="first", attempt=1, output=1)

    outcome = advance("run-1", driver.state(), [done], open_until, (first.lease,))
    committed = driver.commit(outcome.leasing(LeaseRequest("w1", 5)))

    assert [c.lease.node for c in committed.claimed] == ["crm"]
    (state,) = store.circuits()
    assert state.probe_until == open_until + LEASE_FOR
    assert calls.claim(open_until + 1) == []


def retrying_calls_spec() -> WorkflowSpec:
    """``a`` and ``b`` behind ``crm``; ``a`` first, retried an hour later when it fails."""
    retry = {"max_attempts": 2, "initial_backoff": "1h", "max_backoff": "1h", "jitter": 0}
    return parse_spec(
        {
            "name": "retrying",
            "nodes": [
                {"id": "a", "task": "m:f", "circuit": "crm", "priority": 1, "retry": retry},
                {"id": "b", "task": "m:f", "circuit": "crm"},
            ],
        }
    )


def test_the_failure_that_opens_a_circuit_leases_no_attempt_that_needs_it(
    store: Store,
) -> None:
    driver = Driver(store, retrying_calls_spec(), "run-1")
    driver.start()
    (a,) = store.claim("w1", 1, T0 + 1, LEASE_FOR, run_id="run-1")
    assert a.lease.node == "a"
    error = ErrorInfo(type="ConnectionError", message="down", retryable=True)
    failed = NodeFailed(node="a", attempt=1, error=error)
    outcome = advance("run-1", driver.state(), [failed], T0 + 2, (a.lease,))
    opens = [CircuitOutcome("crm", False, 1, COOLDOWN)]

    committed = driver.commit(
        outcome.adding(*map(CountCircuit, opens)).leasing(LeaseRequest("w1", 5))
    )

    assert store.circuits() == crm(1, T0 + 2 + COOLDOWN, None, T0 + 2)
    assert committed.claimed == []
    assert store.leases("run-1") == []


# --- refused transitions, durability ---------------------------------------------------------


@pytest.mark.parametrize("group", [False, True], ids=["alone", "in-a-group"])
@pytest.mark.parametrize("refusal", ["stale", "lease-lost"])
def test_the_outcomes_of_a_refused_transition_are_not_counted(
    store: Store, refusal: str, group: bool
) -> None:
    calls = Calls(store, failures=1)
    calls.queue("r1", "r2")
    calls.queue("billing", circuit="billing")
    assert calls.claim(T0 + 1, run_ids=["r1", "billing"]) == ["billing", "r1"]
    if refusal == "stale":
        outcome = calls.outcome("r1", False, T0 + 2)
        refused = dataclasses.replace(outcome, expected_seq=outcome.expected_seq - 1)
        expected: type[Exception] = ConflictError
    else:
        lost = dataclasses.replace(calls.held["r1"], owner="w2")
        refused = calls.outcome("r1", False, T0 + 2, lease=lost)
        expected = LeaseLostError

    batch = [refused, calls.outcome("billing", False, T0 + 2)] if group else [refused]
    results = store.commit(batch)

    assert isinstance(results[0].error, expected)
    assert [c.name for c in store.circuits()] == (["billing"] if group else [])
    assert calls.claim(T0 + 3) == ["r2"]


def test_circuits_survive_reopening_the_database(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    store = SQLiteStore(path)
    calls = Calls(store)
    open_until = calls.trip()
    calls.queue("r3", "r4")
    store.close()

    store = SQLiteStore(path)
    try:
        calls.store = store
        for driver in calls.drivers.values():
            driver.store = store
        assert store.circuits() == crm(THRESHOLD, open_until, None, T0 + 2)
        assert calls.claim(open_until - 0.5) == []
        (probe,) = calls.claim(open_until)
    finally:
        store.close()

    store = SQLiteStore(path)
    try:
        (state,) = store.circuits()
        assert state.probe_until == open_until + LEASE_FOR
        assert store.claim("w1", 10, open_until + 1, LEASE_FOR) == []
    finally:
        store.close()
    assert probe in ("r3", "r4")
