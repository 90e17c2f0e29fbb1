"""Retention in the store, on every backend: which runs a prune may take, what pruning
one removes and keeps, and that a tombstone that no longer describes its run prunes
nothing (``Store.prune_candidates``, ``prune_runs``, ``tombstone``, ``tombstones``)."""

from __future__ import annotations

import dataclasses

from keel.audit.records import Tombstone
from keel.audit.retention import make_tombstone
from keel.audit.signing import SigningKey
from keel.engine.events import RunCancelled
from keel.errors import RunNotFoundError
from keel.store import Store
from keel.store.chain import canonical_json
from keel.store.model_calls import CallEnded, CallSent
from keel.store.sql import load_queries
from keel.store.sqlite import SQLiteStore
from keel.store.task_logs import AttemptLines, LogLine
from keel.store.tombstones import PruneCandidate, PruneCounts
from tests.contract.conftest import T0, Driver, make_spec, three_node_spec
from tests.contract.test_waits_store import Family

KEY = SigningKey.generate()
PRUNED_AT = T0 + 10_000


def _old_run(store: Store, run_id: str, at: float = T0) -> Driver:
    """A finished run (11 events) that ended around ``at``, with two log lines and one
    answered model call."""
    driver = Driver(store, three_node_spec(), run_id, {"n": 2})
    driver.now = at
    driver.start()
    (a,) = driver.claim("w1")
    lines = [LogLine(at, "INFO", "hello"), LogLine(at, "INFO", "é")]
    store.keep_task_logs([AttemptLines(run_id, "a", None, 1, lines)])
    store.send_call(CallSent(
        id=f"{run_id}-c1", run_id=run_id, workflow="three", node="a", item=None, attempt=1,
        kind="model", fingerprint="fp", provider="openai", model="m",
        request={"messages": ["hi"]}, reserved=10, at=at,
    ))  # fmt: skip
    store.end_call(CallEnded(f"{run_id}-c1", "answered", response={"text": "yo"}))
    driver.succeed(a.lease, "A")
    b, c = sorted(driver.claim("w2"), key=lambda claimed: claimed.lease.node)
    driver.succeed(b.lease, {"text": "B"})
    driver.succeed(c.lease, ["C"])
    return driver


def _candidates(store: Store, before: float = T0 + 1000) -> dict[str, PruneCandidate]:
    return {c.run.id: c for c in store.prune_candidates(before)}


def _tombstones(store: Store, *run_ids: str) -> list[Tombstone]:
    found = _candidates(store)
    return [make_tombstone(found[run_id], PRUNED_AT, "tester", KEY) for run_id in run_ids]


def test_only_ended_runs_older_than_the_cutoff_are_candidates(store: Store) -> None:
    _old_run(store, "old")
    _old_run(store, "young", at=T0 + 5000)
    running = Driver(store, make_spec(), "running")
    running.start()

    found = _candidates(store)

    assert list(found) == ["old"]
    old = found["old"]
    assert old.kept_by is None
    assert old.run == store.get_run("old")
    assert old.counts.events == store.get_run("old").last_seq == 11
    assert (old.counts.log_lines, old.counts.model_calls) == (2, 1)
    stored_bytes = (
        sum(len(link.payload.encode()) for link in store.chain_links("old"))
        + len(b"hello") + len("é".encode())
        + len(canonical_json({"messages": ["hi"]}).encode())
        + len(canonical_json({"text": "yo"}).encode())
        + len(canonical_json({"n": 2}).encode())
        + len(canonical_json(store.get_run("old").output).encode())
    )  # fmt: skip
    assert old.counts.bytes == stored_bytes
    assert list(_candidates(store, before=T0 + 6000)) == ["old", "young"]
    assert store.prune_candidates(T0 + 6000, workflow="other") == []


def test_candidates_page_by_end_time_after_a_position(store: Store) -> None:
    for n in range(5):
        _old_run(store, f"r{n}", at=T0 + n * 10)
    first = store.prune_candidates(T0 + 1000, limit=2)
    assert [c.run.id for c in first] == ["r0", "r1"]
    last = first[-1].run
    assert last.ended_at is not None
    after = store.prune_candidates(T0 + 1000, after=(last.ended_at, last.id), limit=10)
    assert [c.run.id for c in after] == ["r2", "r3", "r4"]


def test_a_pruned_run_keeps_its_row_head_and_tombstone_and_loses_its_payloads(
    store: Store,
) -> None:
    _old_run(store, "old")
    _old_run(store, "young", at=T0 + 5000)
    running = Driver(store, make_spec(), "running")
    running.start()
    before = {run_id: store.get_run(run_id) for run_id in ("old", "young", "running")}
    young_history = store.history("young")
    (tombstone,) = _tombstones(store, "old")

    assert store.prune_runs([tombstone]) == ["old"]

    pruned = store.get_run("old")
    assert pruned.pruned_at == PRUNED_AT
    assert (pruned.input, pruned.output) == (None, None)
    kept = dataclasses.replace(before["old"], input=None, output=None, pruned_at=PRUNED_AT,
                               updated_at=PRUNED_AT)  # fmt: skip
    assert pruned == kept  # status, workflow, times, last_seq and head_hash as they were
    assert store.history("old") == []
    assert store.chain_links("old") == []
    assert store.first_event("old") is None
    assert store.task_logs("old") == []
    assert store.model_calls("old") == []
    stored = store.tombstone("old")
    assert stored is not None
    assert (stored.run_id, stored.pruned_at) == ("old", PRUNED_AT)
    assert Tombstone.from_data(stored.data) == tombstone
    assert tombstone.counts == {"events": 11, "log_lines": 2, "model_calls": 1,
                                "bytes": tombstone.counts["bytes"]}  # fmt: skip
    # the others are untouched
    assert store.get_run("young") == before["young"]
    assert store.history("young") == young_history
    assert len(store.task_logs("young")) == 2
    assert len(store.model_calls("young")) == 1
    assert store.get_run("running") == before["running"]
    assert store.tombstone("young") is None
    # pruned once: no candidate any more
    assert "old" not in _candidates(store)
    assert store.prune_runs([tombstone]) == []


def test_the_llm_sums_keep_counting_pruned_calls(store: Store) -> None:
    _old_run(store, "old")
    sums = store.gauges(T0, T0).llm_calls
    assert sums  # the call is counted
    assert store.prune_runs(_tombstones(store, "old")) == ["old"]
    assert store.gauges(T0, T0).llm_calls == sums  # counters never go down


def test_a_tombstone_that_no_longer_describes_its_run_prunes_nothing(store: Store) -> None:
    _old_run(store, "a")
    _old_run(store, "b")
    good_a, good_b = _tombstones(store, "a", "b")
    wrong_head = dataclasses.replace(good_a, head_hash="0" * 64)
    wrong_counts = dataclasses.replace(good_b, counts={**good_b.counts, "events": 3})
    history = store.history("a")

    assert store.prune_runs([wrong_head, wrong_counts]) == []

    assert store.history("a") == history
    assert store.get_run("a").pruned_at is None
    assert store.tombstone("a") is None
    assert store.get_run("b").pruned_at is None
    assert store.prune_runs([good_a, wrong_counts]) == ["a"]
    assert store.get_run("b").pruned_at is None


def test_a_run_changed_since_its_tombstone_was_made_is_left_as_it_is(store: Store) -> None:
    """A log line written after the candidate was read changes what pruning removes."""
    _old_run(store, "a")
    (tombstone,) = _tombstones(store, "a")
    store.keep_task_logs([AttemptLines("a", "a", None, 1, [LogLine(T0, "INFO", "late")])])

    assert store.prune_runs([tombstone]) == []
    assert len(store.task_logs("a")) == 3


def test_a_run_with_a_parent_or_child_still_going_is_held_back(store: Store) -> None:
    family = Family(store)
    (result,) = store.commit([family.starting(family.child("child-1", T0 + 1), at=T0 + 1)])
    assert result.error is None
    child = Driver(store, family.child_spec, "child-1")
    child.now = T0 + 2
    child.cancel()  # the child ended; its parent waits on
    found = _candidates(store)
    assert found["child-1"].kept_by == "its parent run parent-1 is still going"
    tombstone = make_tombstone(found["child-1"], PRUNED_AT, None, None)
    assert store.prune_runs([tombstone]) == []

    other = Family(store, "parent-2")
    (result,) = store.commit([other.starting(other.child("child-2", T0 + 3), at=T0 + 3)])
    assert result.error is None
    other.parent.now = T0 + 4
    other.parent.commit(other.parent.step([RunCancelled(reason="stop", by="tester")]))
    assert store.get_run("child-2").status == "running"  # its parent ended: it has not yet
    found = _candidates(store)
    assert found["parent-2"].kept_by == "its child run child-2 is still going"
    tombstone = make_tombstone(found["parent-2"], PRUNED_AT, None, None)
    assert store.prune_runs([tombstone]) == []
    assert store.get_run("parent-2").pruned_at is None


def test_a_pruned_run_takes_no_more_events(store: Store) -> None:
    driver = _old_run(store, "old")
    late = driver.step([RunCancelled(reason="too late", by="tester")])  # decided before
    store.prune_runs(_tombstones(store, "old"))

    (result,) = store.commit([late])

    assert isinstance(result.error, RunNotFoundError)
    assert store.history("old") == []
    assert store.get_run("old").status == "succeeded"


def test_tombstones_are_listed_oldest_first_after_a_position(store: Store) -> None:
    for run_id in ("a", "b", "c"):
        _old_run(store, run_id)
    tombstones = _tombstones(store, "a", "b", "c")
    store.prune_runs([dataclasses.replace(t, pruned_at=PRUNED_AT + n)
                      for n, t in enumerate(reversed(tombstones))])  # fmt: skip

    listed = store.tombstones()
    assert [t.run_id for t in listed] == ["c", "b", "a"]
    assert [t.run_id for t in store.tombstones(after=(listed[0].pruned_at, "c"), limit=1)] == ["b"]
    assert PruneCounts(**dict(listed[0].data["counts"].items())).events == 11


def test_candidates_are_read_by_the_index_of_runs_not_pruned(sqlite_store: SQLiteStore) -> None:
    """Each batch reads from its position on, never every ended run sorted again."""
    query = load_queries("keel.store.sqlite")["prune_candidates"]
    params = {"before": T0, "after_at": 0.0, "after_id": "", "workflow": "w", "limit": 5}
    plan = sqlite_store.dialect.connection().execute("EXPLAIN QUERY PLAN " + query, params)
    steps = [str(row[3]) for row in plan]
    assert steps[0].startswith("SEARCH runs USING INDEX runs_to_prune"), steps
    assert not any("TEMP B-TREE" in step for step in steps), steps


def test_a_run_whose_input_and_output_are_blobs_is_a_candidate_with_its_values(
    store: Store,
) -> None:
    """Its columns name blobs (``keel.store.blobs``): the candidate's record reads them."""
    store.blob_threshold = 100  # type: ignore[attr-defined]
    big = {"n": 2, "text": "t" * 200}
    driver = Driver(store, make_spec(), "big", big)
    driver.start()
    driver.cancel()

    (candidate,) = store.prune_candidates(T0 + 1000)

    assert candidate.run == store.get_run("big")
    assert candidate.run.input == big
    assert store.prune_runs([make_tombstone(candidate, PRUNED_AT, "tester", KEY)]) == ["big"]
