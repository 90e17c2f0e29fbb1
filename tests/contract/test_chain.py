"""Tamper evidence: a run's history, edited behind the store's back, no longer verifies.

The run under test is real: three nodes started, claimed and completed through the store
(11 events). The tampering is done with the ``sqlite3`` module on the database file, as
someone with access to the file (and not to keel) would do it.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from contextlib import closing

import pytest

from keel.engine import NodeReclaimed, NodeSucceeded, RunStarted, RunState, compile_plan
from keel.runtime.runs import advance
from keel.store import ChainReport, Store
from keel.store.chain import GENESIS, link_hash, verify_chain
from keel.store.sqlite import SQLiteStore
from tests.contract.conftest import (
    Driver,
    finished_three_node_run,
    raw_sql,
    roots_spec,
    three_node_spec,
)

RUN = "run-1"
EVENTS = 11


def verify(store: Store, run_id: str = RUN) -> ChainReport:
    record = store.get_run(run_id)
    return verify_chain(run_id, store.chain_links(run_id), record.last_seq, record.head_hash)


def tamper(store: SQLiteStore, sql: str, *params: object) -> None:
    """Change the run's events directly in the file; the statement must change something."""
    with closing(sqlite3.connect(store.path)) as conn, conn:
        assert conn.execute(sql, params).rowcount >= 1, sql


def data_of(store: SQLiteStore, seq: int) -> str:
    ((data,),) = raw_sql(store.path, "SELECT data FROM events WHERE run_id = ? AND seq = ?",
                         RUN, seq)  # fmt: skip
    return str(data)


def seq_of(store: Store, kind: type, node: str | None = None) -> int:
    """The sequence number of the run's first event of this type (and node)."""
    return next(
        stored.seq
        for stored in store.history(RUN)
        if isinstance(stored.event, kind) and getattr(stored.event, "node", None) == node
    )


def problems_about(report: ChainReport, seq: int) -> list[str]:
    return [problem for problem in report.problems if problem.startswith(f"event {seq}:")]


@pytest.fixture
def run_store(sqlite_store: SQLiteStore) -> SQLiteStore:
    """A store holding one finished run of 11 events, verified intact before tampering."""
    finished_three_node_run(sqlite_store, RUN)
    Driver(sqlite_store, roots_spec("x"), "bystander").start()
    assert sqlite_store.get_run(RUN).last_seq == EVENTS
    assert verify(sqlite_store).intact
    return sqlite_store


# --- intact histories ---------------------------------------------------------------------


def test_an_untouched_run_verifies(store: Store) -> None:
    finished_three_node_run(store, RUN)
    record = store.get_run(RUN)
    links = store.chain_links(RUN)

    report = verify_chain(RUN, links, record.last_seq, record.head_hash)

    assert report.intact, report.problems
    assert (report.events, report.head_hash) == (EVENTS, record.head_hash)
    assert record.status == "succeeded"
    assert links[0].prev_hash == GENESIS
    for before, link in itertools.pairwise(links):
        expected = link_hash(before.prev_hash, RUN, before.seq, before.at, before.payload)
        assert link.prev_hash == expected


def test_the_chain_holds_after_every_kind_of_write(store: Store) -> None:
    driver = Driver(store, three_node_spec(), RUN, {"n": 1})
    writes: dict[str, Callable[[], object]] = {
        "create_run": lambda: driver.start(),
        "claim": lambda: driver.claim("w1", lease_for=1.0),
        "reclaim": lambda: store.reclaim(driver.tick(5.0)),
        "claim again": lambda: driver.claim("w2"),
        "commit": lambda: driver.succeed(store.leases(RUN)[0], 1),
    }
    for name, write in writes.items():
        write()
        report = verify(store)
        assert report.intact, (name, report.problems)
        assert report.head_hash == store.get_run(RUN).head_hash
    assert seq_of(store, NodeReclaimed, "a") == 4


def test_a_run_recorded_at_whole_second_times_verifies(store: Store) -> None:
    spec = roots_spec("a")
    started = RunStarted(workflow=spec.name, spec_version=spec.version, input={})
    now = 1_700_000_000  # a clock with whole seconds, e.g. int(time.time())
    store.create_run(spec, {}, advance(RUN, RunState.new(compile_plan(spec)), [started], now))
    report = verify(store)
    assert report.intact, report.problems


# --- edits --------------------------------------------------------------------------------


def test_editing_an_output_is_detected_at_the_next_event(run_store: SQLiteStore) -> None:
    seq = seq_of(run_store, NodeSucceeded, "a")
    assert '"output":"A"' in data_of(run_store, seq)
    tamper(run_store, "UPDATE events SET data = replace(data, '\"output\":\"A\"', "
           "'\"output\":\"Z\"') WHERE run_id = ? AND seq = ?", RUN, seq)  # fmt: skip

    event = run_store.history(RUN)[seq - 1].event  # the edit reads back as real data
    assert isinstance(event, NodeSucceeded)
    assert event.output == "Z"
    report = verify(run_store)
    assert not report.intact
    assert problems_about(report, seq + 1)
    assert not problems_about(report, seq)
    assert verify(run_store, "bystander").intact


def test_editing_the_last_event_is_detected_by_the_head_hash(run_store: SQLiteStore) -> None:
    assert '"output":{"b":' in data_of(run_store, EVENTS)
    tamper(run_store, "UPDATE events SET data = replace(data, '\"output\":{\"b\":', "
           "'\"output\":{\"b_\":') WHERE run_id = ? AND seq = ?", RUN, EVENTS)  # fmt: skip

    report = verify(run_store)
    assert not report.intact
    assert any("head hash" in problem for problem in problems_about(report, EVENTS))


@pytest.mark.parametrize("seq", range(1, EVENTS + 1))
@pytest.mark.parametrize(
    "edit",
    [
        "data = data || ' '",
        "at = at + 1",
        "at = at + 0.000001",
        "prev_hash = '" + "f" * 64 + "'",
        "run_id = 'bystander', seq = seq + 100",
    ],
    ids=["data", "at", "at-by-a-microsecond", "prev-hash", "moved-to-another-run"],
)
def test_any_edit_of_any_event_is_detected(run_store: SQLiteStore, seq: int, edit: str) -> None:
    tamper(run_store, f"UPDATE events SET {edit} WHERE run_id = ? AND seq = ?", RUN, seq)
    assert not verify(run_store).intact


def test_changing_an_events_time_is_detected_at_the_next_event(run_store: SQLiteStore) -> None:
    tamper(run_store, "UPDATE events SET at = at - 3600 WHERE run_id = ? AND seq = 3", RUN)
    report = verify(run_store)
    assert problems_about(report, 4)
    assert not problems_about(report, 3)


# --- removals -----------------------------------------------------------------------------


@pytest.mark.parametrize("seq", [1, 5, EVENTS - 1])
def test_deleting_an_event_in_the_middle_is_detected(run_store: SQLiteStore, seq: int) -> None:
    tamper(run_store, "DELETE FROM events WHERE run_id = ? AND seq = ?", RUN, seq)
    report = verify(run_store)
    assert not report.intact
    assert problems_about(report, seq + 1)
    assert report.events == EVENTS - 1


@pytest.mark.parametrize("count", [1, 2, EVENTS])
def test_deleting_the_last_events_is_detected(run_store: SQLiteStore, count: int) -> None:
    tamper(run_store, "DELETE FROM events WHERE run_id = ? AND seq > ?", RUN, EVENTS - count)
    report = verify(run_store)
    assert not report.intact
    assert any("removed from the end" in problem for problem in report.problems)
    assert run_store.get_run(RUN).last_seq == EVENTS  # the head is kept on the run


# --- reordering ---------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), [(4, 5), (2, 9), (10, 11)])
def test_swapping_two_events_contents_is_detected(
    run_store: SQLiteStore, first: int, second: int
) -> None:
    rows = {
        seq: raw_sql(run_store.path, "SELECT kind, node, data FROM events "
                     "WHERE run_id = ? AND seq = ?", RUN, seq)[0]
        for seq in (first, second)
    }  # fmt: skip
    assert rows[first] != rows[second]
    for seq, other in ((first, second), (second, first)):
        tamper(run_store, "UPDATE events SET kind = ?, node = ?, data = ? "
               "WHERE run_id = ? AND seq = ?", *rows[other], RUN, seq)  # fmt: skip

    report = verify(run_store)
    assert not report.intact
    assert problems_about(report, first + 1)


@pytest.mark.parametrize(("first", "second"), [(4, 5), (2, 9), (10, 11)])
def test_swapping_two_events_places_is_detected(
    run_store: SQLiteStore, first: int, second: int
) -> None:
    for old, new in ((first, -1), (second, first), (-1, second)):
        tamper(run_store, "UPDATE events SET seq = ? WHERE run_id = ? AND seq = ?", new, RUN, old)

    report = verify(run_store)
    assert not report.intact
    assert [link.seq for link in run_store.chain_links(RUN)] == list(range(1, EVENTS + 1))
    assert problems_about(report, first)
