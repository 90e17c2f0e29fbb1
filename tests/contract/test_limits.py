"""The store contract for concurrency and rate limits per key, across every worker.

An attempt may carry a concurrency key (at most ``limit_max`` attempts with that key are
held at once) and a rate key (at most ``rate_max`` attempts with that key start in any
``rate_per`` seconds, a window that slides with the claim's ``now``). ``claim`` keeps
both for every owner and every run; a held lease counts until its transition's ``done``
releases it or ``reclaim`` drops it. Keys are independent, attempts without keys are
unaffected, and a full key never costs a claim the other free work. A transition that
leases on commit (a ``LeaseRequest``) leaves new limited attempts on the queue for ``claim``.

Most tests use ``Work``: runs of independent nodes whose ready rows carry the keys given
(or runs of a spec, whose keys ``ready_of`` evaluates), claimed and finished at
explicit times. No clock is read and nothing sleeps.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from keel.engine import ErrorInfo, NodeFailed, NodeSucceeded
from keel.runtime.runs import advance
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store import Claimed, Store
from keel.store.records import Claims, Ready
from keel.store.sqlite import SQLiteStore
from keel.store.writes import LeaseRequest
from tests.contract.conftest import T0, Driver, map_spec, roots_spec, with_enqueued

LEASE_FOR = 30.0

#: every run id the tests use, for claims restricted to runs
RUNS = ["r1", "r2", "r3", "r4", "r5", "r6"]
SCOPES = [
    pytest.param({}, id="any-run"),
    pytest.param({"run_ids": RUNS}, id="some-runs"),
    pytest.param({"queues": ["default"]}, id="some-queues"),
    pytest.param({"run_ids": RUNS, "queues": ["default"]}, id="runs-and-queues"),
]


def limit(key: str, most: int) -> dict[str, Any]:
    """Ready-row fields of a concurrency key."""
    return {"limit_key": key, "limit_max": most}


def rate(key: str, most: int, per: float) -> dict[str, Any]:
    """Ready-row fields of a rate key."""
    return {"rate_key": key, "rate_max": most, "rate_per": per}


class Work:
    """Runs whose attempts carry keys, claimed and finished at explicit times."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.drivers: dict[str, Driver] = {}

    def queue(self, run_id: str, at: float = T0, **rows: dict[str, Any]) -> None:
        """A run of independent nodes, named by ``rows``, each queued at ``at`` with
        those fields of its ready row (keys, priority, queue) changed."""
        driver = Driver(self.store, roots_spec(*rows), run_id)
        driver.now = at
        first = driver.first()
        enqueue = [dataclasses.replace(r, **rows[r.node]) for r in first.enqueued]
        self.store.create_run(driver.spec, driver.input, with_enqueued(first, enqueue))
        self.drivers[run_id] = driver

    def start(
        self, run_id: str, spec: WorkflowSpec, run_input: Any = None, at: float = T0
    ) -> list[Ready]:
        """A run of ``spec`` started at ``at``; the ready rows it queued."""
        driver = Driver(self.store, spec, run_id, run_input)
        driver.now = at
        first = driver.first()
        self.store.create_run(spec, driver.input, first)
        self.drivers[run_id] = driver
        return list(first.enqueued)

    def claim(self, now: float, most: int = 10, owner: str = "w1", **scope: Any) -> Claims:
        claimed = self.store.claim(owner, most, now, LEASE_FOR, **scope)
        assert isinstance(claimed, Claims)
        return claimed

    def take(self, now: float, most: int = 10, owner: str = "w1", **scope: Any) -> list[str]:
        """Claim at ``now``; ``run.node`` of every attempt leased, sorted."""
        return places(self.claim(now, most, owner, **scope))

    def finish(self, claimed: Claimed, at: float, ok: bool = True) -> None:
        """Commit how the held attempt ended, releasing its lease."""
        lease = claimed.lease
        event: NodeSucceeded | NodeFailed
        if ok:
            event = NodeSucceeded(
                node=lease.node, attempt=lease.attempt, output="ok", item=lease.item
            )
        else:
            error = ErrorInfo(type="Boom", message="boom", retryable=False)
            event = NodeFailed(node=lease.node, attempt=lease.attempt, error=error, item=lease.item)
        state = self.drivers[lease.run_id].state()
        (result,) = self.store.commit([advance(lease.run_id, state, [event], at, (lease,))])
        assert result.error is None, result.error


def places(claimed: list[Claimed]) -> list[str]:
    return sorted(f"{c.lease.run_id}.{c.lease.node}" for c in claimed)


def held(store: Store, *run_ids: str) -> int:
    return sum(len(store.leases(run_id)) for run_id in run_ids)


def call_spec(name: str = "call", node: str = "call", **policies: Any) -> WorkflowSpec:
    """One task node with the given policies."""
    return parse_spec({"name": name, "nodes": [{"id": node, "task": "m:f", **policies}]})


# --- concurrency limits --------------------------------------------------------------------


@pytest.mark.parametrize("scope", SCOPES)
def test_a_concurrency_limit_holds_across_runs_claims_and_owners(
    store: Store, scope: dict[str, Any]
) -> None:
    work = Work(store)
    for run_id in RUNS[:5]:
        work.queue(run_id, call=limit("crm", 2))

    first = work.take(T0 + 1, most=1, owner="w1", **scope)
    second = work.take(T0 + 2, most=10, owner="w2", **scope)

    assert len(first) == len(second) == 1
    assert first != second
    assert work.take(T0 + 3, owner="w3", **scope) == []
    assert work.take(T0 + 4, owner="w1", **scope) == []
    assert held(store, *RUNS[:5]) == 2


def test_a_claim_with_more_room_than_the_key_takes_only_the_keys_limit(store: Store) -> None:
    work = Work(store)
    work.queue("r1", **{f"n{i}": limit("crm", 3) for i in range(6)})

    claimed = work.take(T0 + 1, most=10)

    assert len(claimed) == 3
    assert store.ready_count("r1") == 6
    assert held(store, "r1") == 3


def test_a_run_scoped_claim_counts_the_holders_of_other_runs(store: Store) -> None:
    work = Work(store)
    work.queue("r1", call=limit("crm", 1))
    work.queue("r2", call=limit("crm", 1))
    assert work.take(T0 + 1, run_id="r1") == ["r1.call"]

    assert work.take(T0 + 2, run_id="r2") == []
    assert work.take(T0 + 2, run_ids=["r2"], queues=["default"]) == []


def test_concurrency_keys_are_counted_apart(store: Store) -> None:
    work = Work(store)
    work.queue(
        "r1",
        a1=limit("a", 1), a2=limit("a", 1), a3=limit("a", 1),
        b1=limit("b", 2), b2=limit("b", 2), b3=limit("b", 2),
        p1={}, p2={},
    )  # fmt: skip

    claimed = work.take(T0 + 1)

    assert len([p for p in claimed if p.startswith("r1.a")]) == 1
    assert len([p for p in claimed if p.startswith("r1.b")]) == 2
    assert [p for p in claimed if p.startswith("r1.p")] == ["r1.p1", "r1.p2"]
    assert work.take(T0 + 2) == []


def test_attempts_without_keys_are_not_limited(store: Store) -> None:
    work = Work(store)
    work.queue("r1", **{f"n{i}": {} for i in range(5)})
    work.queue("r2", held=limit("crm", 1))
    assert work.take(T0 + 1, run_id="r2") == ["r2.held"]

    assert len(work.take(T0 + 2, most=10)) == 5


def test_a_per_tenant_key_from_the_run_input_limits_each_tenant_alone(store: Store) -> None:
    work = Work(store)
    spec = call_spec(concurrency={"key": "'crm:' + input.tenant", "limit": 1})
    (row,) = work.start("acme-1", spec, {"tenant": "acme"})
    work.start("acme-2", spec, {"tenant": "acme"})
    work.start("globex-1", spec, {"tenant": "globex"})
    work.start("globex-2", spec, {"tenant": "globex"})

    claimed = work.claim(T0 + 1)

    assert (row.limit_key, row.limit_max, row.rate_key) == ("crm:acme", 1, None)
    tenants = sorted(c.lease.run_id.split("-")[0] for c in claimed)
    assert tenants == ["acme", "globex"]
    assert work.take(T0 + 2) == []


def test_a_key_from_a_parents_output_is_evaluated_when_the_attempt_is_scheduled(
    store: Store,
) -> None:
    spec = parse_spec(
        {
            "name": "regional",
            "nodes": [
                {"id": "a", "task": "m:f"},
                {
                    "id": "b",
                    "task": "m:f",
                    "after": ["a"],
                    "concurrency": {"key": "'region:' + nodes.a.output.region", "limit": 1},
                },
            ],
        }
    )
    work = Work(store)
    for run_id in ("r1", "r2", "r3"):
        work.start(run_id, spec)
    regions = {"r1": "eu", "r2": "eu", "r3": "us"}
    for claimed in work.claim(T0 + 1):
        region = regions[claimed.lease.run_id]
        event = NodeSucceeded(node="a", attempt=1, output={"region": region})
        state = work.drivers[claimed.lease.run_id].state()
        transition = advance(claimed.lease.run_id, state, [event], T0 + 2, (claimed.lease,))
        (ready,) = transition.enqueued
        assert ready.limit_key == f"region:{region}"
        (result,) = store.commit([transition])
        assert result.error is None

    taken = work.take(T0 + 3)

    assert len(taken) == 2
    assert "r3.b" in taken
    assert work.take(T0 + 4) == []


def test_the_items_of_map_runs_share_the_nodes_key(store: Store) -> None:
    work = Work(store)
    spec = map_spec(concurrency={"key": "'crm'", "limit": 2})
    work.start("r1", spec, {"items": [1, 2, 3, 4]})
    work.start("r2", spec, {"items": [5, 6]})

    claimed = work.claim(T0 + 1)

    assert len(claimed) == 2
    assert work.take(T0 + 2) == []
    work.finish(claimed[0], T0 + 3)
    (next_one,) = work.claim(T0 + 4)
    assert next_one.lease.item is not None
    assert work.take(T0 + 5) == []


# --- releasing a place -----------------------------------------------------------------------


@pytest.mark.parametrize("ok", [True, False], ids=["succeeded", "failed"])
def test_a_held_attempt_that_finishes_frees_its_place(store: Store, ok: bool) -> None:
    work = Work(store)
    for run_id in ("r1", "r2", "r3"):
        work.queue(run_id, call=limit("crm", 1))
    (first,) = work.claim(T0 + 1)
    assert work.take(T0 + 2) == []

    work.finish(first, T0 + 3, ok=ok)

    (second,) = work.claim(T0 + 4)
    assert second.lease.run_id != first.lease.run_id
    assert work.take(T0 + 5) == []


def test_finishing_an_attempt_of_another_key_frees_no_place(store: Store) -> None:
    work = Work(store)
    work.queue("r1", call=limit("crm", 1))
    work.queue("r2", call=limit("crm", 1))
    work.queue("r3", call=limit("billing", 1))
    claimed = work.claim(T0 + 1, run_ids=["r1", "r3"])
    assert places(claimed) == ["r1.call", "r3.call"]

    (billing,) = [c for c in claimed if c.lease.run_id == "r3"]
    work.finish(billing, T0 + 2)

    assert work.take(T0 + 3) == []
    assert store.ready_count("r2") == 1


def test_an_expired_lease_holds_its_place_until_it_is_reclaimed(store: Store) -> None:
    work = Work(store)
    for run_id in ("r1", "r2", "r3"):
        work.queue(run_id, call=limit("crm", 1))
    (first,) = work.claim(T0 + 1)
    expired = T0 + 1 + LEASE_FOR + 10

    assert work.take(expired) == []
    (event,) = store.reclaim(expired)

    assert event.run_id == first.lease.run_id
    assert len(work.take(expired + 1, owner="w2")) == 1
    assert work.take(expired + 2, owner="w3") == []
    assert held(store, "r1", "r2", "r3") == 1


def test_reclaiming_a_dead_owners_lease_frees_its_place(store: Store) -> None:
    work = Work(store)
    for run_id in ("r1", "r2"):
        work.queue(run_id, call=limit("crm", 1))
    assert len(work.take(T0 + 1, owner="dead")) == 1
    assert work.take(T0 + 2, owner="w2") == []

    assert len(store.reclaim(T0 + 3, dead_owners=["dead"], reason="gone")) == 1

    assert len(work.take(T0 + 4, owner="w2")) == 1
    assert work.take(T0 + 5, owner="w2") == []


# --- a full key costs the others nothing ---------------------------------------------------


def starving(work: Work, key: dict[str, Any]) -> None:
    """Run r1: 20 keyed attempts of priority 5 (queued first); run r2: 3 plain ones."""
    work.queue("r1", **{f"k{i}": {**key, "priority": 5} for i in range(20)})
    work.queue("r2", at=T0 + 1, p0={}, p1={}, p2={})


KEYS = [
    pytest.param(limit("crm", 1), id="concurrency"),
    pytest.param(rate("crm", 1, 60.0), id="rate"),
]


@pytest.mark.parametrize("key", KEYS)
def test_a_key_full_before_the_claim_does_not_cost_it_other_free_attempts(
    store: Store, key: dict[str, Any]
) -> None:
    work = Work(store)
    starving(work, key)
    assert len(work.take(T0 + 2, most=1)) == 1  # the key is full now

    assert work.take(T0 + 3, most=5, owner="w2") == ["r2.p0", "r2.p1", "r2.p2"]


@pytest.mark.parametrize("key", KEYS)
def test_a_key_filled_by_the_claim_itself_does_not_cost_it_other_free_attempts(
    store: Store, key: dict[str, Any]
) -> None:
    work = Work(store)
    starving(work, key)

    claimed = work.take(T0 + 2, most=5)

    assert [p for p in claimed if p.startswith("r2.")] == ["r2.p0", "r2.p1", "r2.p2"]
    assert len([p for p in claimed if p.startswith("r1.")]) == 1


# --- rate limits -----------------------------------------------------------------------------


def test_a_rate_limit_starts_exactly_its_limit_per_window(store: Store) -> None:
    work = Work(store)
    work.queue("r1", **{f"n{i}": rate("api", 3, 1.0) for i in range(10)})

    first = work.claim(T0 + 1)

    assert len(first) == 3
    assert first.retry_at == T0 + 2
    assert work.take(T0 + 1.5, owner="w2") == []
    assert work.take(T0 + 1.999, owner="w2") == []
    assert len(work.take(T0 + 2, owner="w2")) == 3
    assert work.take(T0 + 2, owner="w3") == []
    assert len(work.take(T0 + 3, owner="w3")) == 3
    assert len(work.take(T0 + 4)) == 1


def test_a_rate_window_slides_with_the_claims_time(store: Store) -> None:
    work = Work(store)
    work.queue("r1", **{f"n{i}": rate("api", 3, 10.0) for i in range(10)})

    assert len(work.take(T0 + 1, most=2)) == 2
    late = work.claim(T0 + 5)
    assert len(late) == 1
    assert late.retry_at == T0 + 11

    assert work.take(T0 + 10.999) == []
    slid = work.claim(T0 + 11)  # the two starts at T0 + 1 left the window, T0 + 5 did not
    assert len(slid) == 2
    assert slid.retry_at == T0 + 15
    assert work.take(T0 + 14.999) == []
    assert len(work.take(T0 + 15)) == 1


def test_a_finished_attempt_does_not_give_back_its_start(store: Store) -> None:
    work = Work(store)
    work.queue("r1", **{f"n{i}": rate("api", 2, 10.0) for i in range(4)})
    claimed = work.claim(T0 + 1)
    assert len(claimed) == 2

    for c in claimed:
        work.finish(c, T0 + 2)

    assert work.take(T0 + 3) == []
    assert len(work.take(T0 + 11)) == 2


def test_a_rate_written_as_a_duration_string_is_seconds(store: Store) -> None:
    work = Work(store)
    spec = call_spec(rate_limit={"key": "'partner'", "limit": 1, "per": "2m"})
    (row,) = work.start("r1", spec)
    work.start("r2", spec)

    assert (row.rate_key, row.rate_max, row.rate_per, row.limit_key) == ("partner", 1, 120.0, None)
    assert len(work.take(T0 + 1)) == 1
    assert work.take(T0 + 120.999) == []
    assert len(work.take(T0 + 121)) == 1


def test_a_rate_key_is_shared_by_the_nodes_and_workflows_that_name_it(store: Store) -> None:
    work = Work(store)
    policy = {"key": "'partner'", "limit": 2, "per": "1m"}
    sync = call_spec("sync", "push", rate_limit=policy)
    report = call_spec("report", "fetch", rate_limit=policy)
    for run_id in ("s1", "s2", "s3"):
        work.start(run_id, sync)
    for run_id in ("f1", "f2", "f3"):
        work.start(run_id, report, at=T0 + 0.5)

    first = work.claim(T0 + 1)

    assert len(first) == 2
    assert work.take(T0 + 2, run_ids=["f1", "f2", "f3"]) == []
    assert work.take(T0 + 60.999) == []
    assert len(work.take(T0 + 61)) == 2


def test_a_per_tenant_rate_key_limits_each_tenant_alone(store: Store) -> None:
    work = Work(store)
    spec = call_spec(rate_limit={"key": "input.tenant", "limit": 1, "per": 10})
    for run_id in ("acme-1", "acme-2", "globex-1", "globex-2"):
        work.start(run_id, spec, {"tenant": run_id.split("-")[0]})

    claimed = work.claim(T0 + 1)

    assert sorted(c.lease.run_id.split("-")[0] for c in claimed) == ["acme", "globex"]
    assert claimed.retry_at == T0 + 11
    assert work.take(T0 + 5) == []


def test_rate_keys_are_counted_apart(store: Store) -> None:
    work = Work(store)
    work.queue(
        "r1",
        a1=rate("a", 1, 10.0), a2=rate("a", 1, 10.0),
        b1=rate("b", 2, 10.0), b2=rate("b", 2, 10.0), b3=rate("b", 2, 10.0),
        c1=limit("a", 5),  # a concurrency key of the same name is another key
    )  # fmt: skip

    claimed = work.take(T0 + 1)

    assert len([p for p in claimed if p.startswith("r1.a")]) == 1
    assert len([p for p in claimed if p.startswith("r1.b")]) == 2
    assert "r1.c1" in claimed


def test_both_limits_of_an_attempt_apply_and_only_starts_count_against_the_rate(
    store: Store,
) -> None:
    work = Work(store)
    both = {**limit("crm", 2), **rate("crm", 5, 10.0)}
    work.queue("r1", **{f"n{i}": both for i in range(8)})

    first = work.claim(T0 + 1)  # the concurrency limit stops it, not the rate
    assert len(first) == 2
    assert first.retry_at is None
    for c in first:
        work.finish(c, T0 + 1.5)
    second = work.claim(T0 + 2)
    assert len(second) == 2
    for c in second:
        work.finish(c, T0 + 2.5)

    third = work.claim(T0 + 3)  # five starts in the window: the rate stops it

    assert len(third) == 1
    assert third.retry_at == T0 + 11
    work.finish(third[0], T0 + 4)
    assert work.take(T0 + 5) == []
    assert len(work.take(T0 + 11)) == 2


# --- retry_at ------------------------------------------------------------------------------


def test_retry_at_is_none_when_no_rate_held_anything_back(store: Store) -> None:
    work = Work(store)
    work.queue("r1", plain={}, full1=limit("crm", 1), full2=limit("crm", 1))

    claimed = work.claim(T0 + 1)
    nothing = work.claim(T0 + 2)

    assert len(claimed) == 2
    assert claimed.retry_at is None
    assert isinstance(nothing, Claims)
    assert (list(nothing), nothing.retry_at) == ([], None)


def test_retry_at_is_the_earliest_time_any_held_back_attempt_can_start(store: Store) -> None:
    work = Work(store)
    work.queue(
        "r1",
        a1=rate("a", 1, 10.0), a2=rate("a", 1, 10.0),
        b1=rate("b", 2, 4.0), b2=rate("b", 2, 4.0), b3=rate("b", 2, 4.0),
    )  # fmt: skip

    claimed = work.claim(T0 + 1)

    assert len(claimed) == 3
    assert claimed.retry_at == T0 + 5
    assert work.take(T0 + 4.999) == []
    assert len(work.take(T0 + 5)) == 1


def test_retry_at_is_reported_when_every_waiting_attempt_is_over_its_rate(
    store: Store,
) -> None:
    work = Work(store)
    work.queue("r1", **{f"n{i}": rate("api", 2, 10.0) for i in range(4)})
    assert len(work.take(T0 + 1)) == 2

    waiting = work.claim(T0 + 3)

    assert list(waiting) == []
    assert waiting.retry_at == T0 + 11


# --- leasing on commit ----------------------------------------------------------------------


def first_and(keyed: dict[str, Any]) -> WorkflowSpec:
    """``first`` (no key, claimed first) and ``keyed`` (with the given policy)."""
    return parse_spec(
        {
            "name": "first-and-keyed",
            "nodes": [
                {"id": "first", "task": "m:f", "priority": 1},
                {"id": "keyed", "task": "m:f", **keyed},
            ],
        }
    )


POLICIES = [
    pytest.param({"concurrency": {"key": "'crm'", "limit": 5}}, id="concurrency"),
    pytest.param({"rate_limit": {"key": "'crm'", "limit": 5, "per": 1}}, id="rate"),
    pytest.param(
        {"concurrency": {"key": "'crm'", "limit": 5}, "circuit": "crm"}, id="concurrency-circuit"
    ),
]


@pytest.mark.parametrize("policy", POLICIES)
def test_a_new_limited_attempt_is_not_leased_by_the_transition_that_makes_it(
    store: Store, policy: dict[str, Any]
) -> None:
    driver = Driver(store, first_and(policy), "run-1")
    first = driver.first().leasing(LeaseRequest("w1", 5))
    assert [r.limited for r in first.enqueued] == [False, True]

    committed = store.create_run(driver.spec, driver.input, first)

    assert [c.lease.node for c in committed.claimed] == ["first"]
    assert store.ready_count("run-1") == 2
    assert [c.lease.node for c in store.claim("w2", 5, T0 + 1, LEASE_FOR)] == ["keyed"]


def test_a_queued_attempt_of_a_full_key_is_not_leased_on_commit(store: Store) -> None:
    work = Work(store)
    work.queue("holder", call=limit("crm", 1))
    assert work.take(T0 + 1) == ["holder.call"]
    spec = first_and({"concurrency": {"key": "'crm'", "limit": 1}})
    work.start("run-1", spec, at=T0 + 2)
    (first,) = work.claim(T0 + 3, most=1, run_id="run-1")
    done = NodeSucceeded(node="first", attempt=1, output=1)

    outcome = advance("run-1", work.drivers["run-1"].state(), [done], T0 + 4, (first.lease,))
    (result,) = store.commit([outcome.leasing(LeaseRequest("w1", 5))])

    assert result.error is None
    assert result.claimed == []
    assert store.leases("run-1") == []
    assert store.ready_count("run-1") == 1


def test_a_queued_attempt_leased_on_commit_counts_against_its_rate(store: Store) -> None:
    """However the commit treats a queued rate-limited attempt, no more attempts than
    the rate allows start in its window: one taken on commit is a start claims see."""
    work = Work(store)
    spec = first_and({"rate_limit": {"key": "'partner'", "limit": 1, "per": 10}})
    work.start("run-1", spec)
    work.start("run-2", call_spec(rate_limit={"key": "'partner'", "limit": 1, "per": 10}))
    (first,) = work.claim(T0 + 1, most=1, run_id="run-1")
    assert first.lease.node == "first"
    done = NodeSucceeded(node="first", attempt=1, output=1)

    outcome = advance("run-1", work.drivers["run-1"].state(), [done], T0 + 2, (first.lease,))
    (result,) = store.commit([outcome.leasing(LeaseRequest("w1", 5))])
    later = work.claim(T0 + 3, owner="w2")

    assert result.error is None
    assert len(result.claimed) + len(later) == 1
    assert work.take(T0 + 11.5) == ([] if result.claimed else ["run-2.call"])


def queues_spec() -> WorkflowSpec:
    """``first`` and ``fast`` on queue ``fast``, ``slow`` on queue ``slow``."""
    return parse_spec(
        {
            "name": "queues",
            "nodes": [
                {"id": "first", "task": "m:f", "queue": "fast", "priority": 1},
                {"id": "fast", "task": "m:f", "queue": "fast"},
                {"id": "slow", "task": "m:f", "queue": "slow"},
            ],
        }
    )


@pytest.mark.parametrize(
    ("lease_queues", "leased"),
    [
        pytest.param(None, ["fast", "first", "slow"], id="every-queue"),
        pytest.param(["fast"], ["fast", "first"], id="fast"),
        pytest.param(["slow", "other"], ["slow"], id="slow"),
        pytest.param(["other"], [], id="none-of-them"),
    ],
)
def test_a_new_attempt_is_leased_on_commit_only_from_the_workers_queues(
    store: Store, lease_queues: list[str] | None, leased: list[str]
) -> None:
    driver = Driver(store, queues_spec(), "run-1")
    first = driver.first().leasing(LeaseRequest("w1", 5, queues=lease_queues))

    committed = store.create_run(driver.spec, driver.input, first)

    assert sorted(c.lease.node for c in committed.claimed) == leased
    assert sorted(lease.node for lease in store.leases("run-1")) == leased
    rest = sorted({"first", "fast", "slow"} - set(leased))
    assert sorted(c.lease.node for c in store.claim("w2", 5, T0 + 1, LEASE_FOR)) == rest


@pytest.mark.parametrize(
    ("lease_queues", "leased"),
    [
        pytest.param(None, ["fast", "slow"], id="every-queue"),
        pytest.param(["fast"], ["fast"], id="fast"),
        pytest.param(["slow"], ["slow"], id="slow"),
        pytest.param(["other"], [], id="none-of-them"),
    ],
)
def test_a_queued_attempt_is_leased_on_commit_only_from_the_workers_queues(
    store: Store, lease_queues: list[str] | None, leased: list[str]
) -> None:
    work = Work(store)
    work.start("run-1", queues_spec())
    (first,) = work.claim(T0 + 1, most=1, run_id="run-1")
    assert first.lease.node == "first"
    done = NodeSucceeded(node="first", attempt=1, output=1)

    outcome = advance("run-1", work.drivers["run-1"].state(), [done], T0 + 2, (first.lease,))
    (result,) = store.commit([outcome.leasing(LeaseRequest("w1", 5, queues=lease_queues))])

    assert result.error is None
    assert sorted(c.lease.node for c in result.claimed) == leased
    assert sorted(lease.node for lease in store.leases("run-1")) == leased
    rest = sorted({"fast", "slow"} - set(leased))
    assert sorted(c.lease.node for c in store.claim("w2", 5, T0 + 3, LEASE_FOR)) == rest


# --- durability -----------------------------------------------------------------------------


def test_limits_survive_reopening_the_database(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    store = SQLiteStore(path)
    try:
        work = Work(store)
        work.queue("r1", **{f"c{i}": limit("crm", 1) for i in range(3)})
        work.queue("r2", **{f"r{i}": rate("api", 2, 10.0) for i in range(3)})
        assert len(work.take(T0 + 1)) == 3
    finally:
        store.close()

    store = SQLiteStore(path)
    try:
        work.store = store
        assert work.take(T0 + 2) == []
        assert work.take(T0 + 10.999) == []
        assert len(work.take(T0 + 11)) == 1
    finally:
        store.close()


def test_the_look_for_rate_limited_attempts_reads_only_those(sqlite_store: SQLiteStore) -> None:
    """A claim that takes less than it asked for looks for attempts held by a rate
    limit; through its own index, not a read of every free attempt (a backlog of
    work without rate limits made each such claim read the whole queue)."""
    conn = sqlite_store.dialect.connection()
    query = sqlite_store.dialect.queries["waiting_rates"]
    plan = conn.execute(f"EXPLAIN QUERY PLAN {query}", {"now": T0, "queues": None}).fetchall()
    assert "ready_rate_waiting" in " ".join(str(row[3]) for row in plan)
