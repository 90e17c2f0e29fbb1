"""Pruning old runs on every backend (``keel.audit.retention``), and checking what is
left of them (``keel.audit.pruned``, ``verification_document``): batches, a dry run, the
runs kept, tombstones that verify and edited ones that do not, and a prune that fails in
the middle of a batch leaving no run half pruned."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from keel.audit.pruned import INVALID, UNCHECKED, UNSIGNED, VALID, check_pruned
from keel.audit.records import Tombstone
from keel.audit.retention import prune
from keel.audit.signing import SigningKey
from keel.runtime.runs import RunCache
from keel.runtime.views.documents import run_detail, verification_document
from keel.store import Store
from keel.store.sqlstore.pruning import SQLPruning
from keel.store.tombstones import StoredTombstone
from tests.contract.conftest import T0, Driver, finished_three_node_run, make_spec

KEY = SigningKey.generate()
KEYS = {KEY.key_id: KEY.public_key}
CUTOFF = T0 + 1000
NOW = T0 + 90 * 86_400


def _runs(store: Store, count: int) -> list[str]:
    ids = []
    for n in range(count):
        driver = finished_three_node_run(store, f"old-{n:02d}")
        assert driver.now < CUTOFF
        ids.append(driver.run_id)
    return ids


def _young_and_running(store: Store) -> dict[str, object]:
    young = Driver(store, make_spec(), "young")
    young.now = CUTOFF + 10
    young.start()
    (a,) = young.claim()
    young.succeed(a.lease, 1)
    (b,) = young.claim()
    young.succeed(b.lease, 2)
    assert store.get_run("young").status == "succeeded"
    running = Driver(store, make_spec(), "running")
    running.start()
    return {run_id: (store.get_run(run_id), store.history(run_id))
            for run_id in ("young", "running")}  # fmt: skip


def test_a_prune_takes_old_ended_runs_in_batches_and_leaves_the_others(store: Store) -> None:
    old = _runs(store, 5)
    others = _young_and_running(store)
    seen = []

    report = prune(store, CUTOFF, now=lambda: NOW, key=KEY, by="ops", batch=2,
                   progress=lambda r: seen.append(len(r.pruned)))  # fmt: skip

    assert sorted(report.pruned) == old
    assert report.batches == 3
    assert seen == [2, 4, 5]
    assert report.counts.events == 5 * 11
    for run_id in old:
        record = store.get_run(run_id)
        assert record.pruned_at == NOW
        assert store.history(run_id) == []
        check = check_pruned(record, store.tombstone(run_id), 0, KEYS)
        assert check.intact, check.problems
        assert check.signature == VALID
        assert check.tombstone is not None
        assert (check.tombstone.by, check.tombstone.last_seq) == ("ops", 11)
    for run_id, before in others.items():
        assert (store.get_run(run_id), store.history(run_id)) == before


def test_a_dry_run_counts_what_would_go_and_removes_nothing(store: Store) -> None:
    old = _runs(store, 3)
    before = {run_id: (store.get_run(run_id), store.history(run_id)) for run_id in old}

    report = prune(store, CUTOFF, now=lambda: NOW, key=KEY, dry_run=True, batch=2)

    assert sorted(report.pruned) == old
    assert report.counts.events == 33
    assert report.counts.bytes > 0
    assert {run_id: (store.get_run(run_id), store.history(run_id)) for run_id in old} == before
    assert store.tombstones() == []


def test_a_workflow_given_prunes_only_its_runs(store: Store) -> None:
    _runs(store, 2)
    other = Driver(store, make_spec("other"), "other-1")
    other.start()
    other.cancel()
    assert store.get_run("other-1").ended_at is not None

    report = prune(store, CUTOFF, now=lambda: NOW, key=KEY, workflow="other")

    assert report.pruned == ["other-1"]
    assert store.get_run("old-00").pruned_at is None


def test_a_pruned_run_verifies_by_its_tombstone_and_an_edited_one_fails(store: Store) -> None:
    (run_id,) = _runs(store, 1)
    prune(store, CUTOFF, now=lambda: NOW, key=KEY, by="ops")
    record = store.get_run(run_id)
    no_state = RunCache(store, capacity=0).state  # a pruned run is never replayed

    found = verification_document(store, record, no_state, KEYS)
    assert found["intact"], found["problems"]
    assert found["pruned"]["signature"] == VALID
    assert found["pruned"]["signed_by"] == KEY.key_id
    assert found["head_hash"] == record.head_hash

    stored = store.tombstone(run_id)
    assert stored is not None
    edited = StoredTombstone(run_id, stored.pruned_at, {**stored.data, "head_hash": "f" * 64})
    check = check_pruned(record, edited, 0, KEYS)
    assert not check.intact
    assert check.signature == INVALID
    assert any("head hash" in problem for problem in check.problems)
    # edited and signed again by someone else's key: the head still disagrees, and the key
    # is not trusted
    other = SigningKey.generate()
    forged = Tombstone.from_data(edited.data)
    forged = dataclasses.replace(forged, signature=other.sign(forged.signed_data()))
    check = check_pruned(record, StoredTombstone(run_id, 0, forged.to_data()), 0, KEYS)
    assert any("not a trusted key" in problem for problem in check.problems)
    # the row's head edited to match an edited tombstone: the signature still fails
    moved = dataclasses.replace(record, head_hash="f" * 64)
    check = check_pruned(moved, edited, 0, KEYS)
    assert check.problems == (f"tombstone: the signature by key {KEY.key_id} does not match "
                              "what it signs",)  # fmt: skip
    # with no key to check against, the signature is unchecked, not wrong
    assert check_pruned(record, stored, 0, {}).signature == UNCHECKED
    assert check_pruned(record, stored, 0, {}).intact
    # events left behind, or no tombstone at all
    assert not check_pruned(record, stored, 3, KEYS).intact
    assert check_pruned(record, None, 0, KEYS).problems == (
        "the run is marked pruned but has no tombstone",
    )


def test_an_unsigned_prune_is_intact_and_said_unsigned(store: Store) -> None:
    (run_id,) = _runs(store, 1)
    prune(store, CUTOFF, now=lambda: NOW, key=None)
    check = check_pruned(store.get_run(run_id), store.tombstone(run_id), 0, KEYS)
    assert check.intact
    assert check.signature == UNSIGNED


def test_a_pruned_runs_detail_has_its_tombstone_and_no_nodes(store: Store) -> None:
    (run_id,) = _runs(store, 1)
    prune(store, CUTOFF, now=lambda: NOW, key=KEY)
    record = store.get_run(run_id)
    plan = RunCache(store, capacity=0).plan(record.spec_version)

    detail = run_detail(store, record, plan, NOW)

    assert (detail["status"], detail["nodes"], detail["input"]) == ("succeeded", [], None)
    assert detail["pruned"]["counts"]["events"] == 11
    assert detail["pruned_at"] == NOW


class _CrashError(Exception):
    pass


@pytest.fixture
def crash_in_second_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_prune`` raises after its deletes (before the commit) in its second call."""
    calls = 0
    original = SQLPruning._prune

    def crashing(self: SQLPruning, *args: Any) -> None:
        nonlocal calls
        original(self, *args)
        calls += 1
        if calls == 2:
            raise _CrashError

    monkeypatch.setattr(SQLPruning, "_prune", crashing)


def test_a_prune_that_fails_midway_leaves_no_run_half_pruned(
    store: Store, crash_in_second_batch: None
) -> None:
    old = _runs(store, 5)
    histories = {run_id: store.history(run_id) for run_id in old}

    with pytest.raises(_CrashError):
        prune(store, CUTOFF, now=lambda: NOW, key=KEY, batch=2)

    pruned = [run_id for run_id in old if store.get_run(run_id).pruned_at is not None]
    assert pruned == old[:2]  # the first batch, committed
    for run_id in old:
        record = store.get_run(run_id)
        if run_id in pruned:
            assert store.history(run_id) == []
            assert store.tombstone(run_id) is not None
        else:  # untouched: its events, its payloads, no tombstone
            assert store.history(run_id) == histories[run_id]
            assert record.input == {"n": 2}
            assert store.tombstone(run_id) is None
    # run again, it finishes the job
    report = prune(store, CUTOFF, now=lambda: NOW, key=KEY, batch=2)
    assert sorted(report.pruned) == old[2:]
    assert all(check_pruned(store.get_run(r), store.tombstone(r), 0, KEYS).intact for r in old)
