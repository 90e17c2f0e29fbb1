"""The store contract for waiting: the ``waits`` listing, child runs, holds, family timers.

What the waiting feature added to ``Store``: a transition lists the nodes that began to
wait (``OpenWait``) and unlists those that stopped (``CloseWait``); a run that ends
drops all of its waits. A subworkflow node's child run (``CreateChild``) is created in
its parent's transaction, or not at all. A paused run is put on hold (``Hold(True)``):
its queued attempts are out of every claim's reach until ``Hold(False)`` brings them back
as they were. A transition's timers may be for another run (a child telling its parent it
ended), but never for a run that has ended. Transitions are built by hand here, so each
test names exactly the writes it checks; the store does not read the events.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from keel.engine import (
    NodeSucceeded,
    RunCancelled,
    RunCompleted,
    RunStarted,
    RunState,
    compile_plan,
)
from keel.engine.events import ChildRunEnded, Event, NodeAwaiting, RunPaused, RunUnpaused
from keel.errors import ConflictError, RunNotFoundError
from keel.runtime.runs import advance
from keel.store import Claimed, Committed, Lease, Store, Timer, Transition, Wait, verify_chain
from keel.store.chain import GENESIS
from keel.store.records import Ready
from keel.store.sql import load_migrations
from keel.store.sqlite import SQLiteStore
from keel.store.writes import (
    ClearTimer,
    CloseWait,
    CreateChild,
    Enqueue,
    Finish,
    Hold,
    OpenWait,
    SetStatus,
    SetTimer,
    Write,
)
from tests.contract.conftest import T0, Driver, make_spec, raw_sql, roots_spec, with_enqueued

#: far beyond any backoff, yet well inside what a float time can hold
TEN_YEARS = 10 * 365 * 24 * 3600.0
ENDS = ["succeeded", "failed", "cancelled"]


def writes_of(
    *,
    waits: Sequence[Wait] = (),
    clear_waits: Sequence[str] = (),
    timers: Sequence[Timer] = (),
    clear_timers: Sequence[str] = (),
    children: Sequence[CreateChild] = (),
    enqueue: Sequence[Ready] = (),
    done: Sequence[Lease] = (),
    hold: bool | None = None,
    status: str | None = None,
    output: Any = None,
    reason: str | None = None,
) -> list[Write]:
    """The typed writes of a hand-built transition, named as these tests think of them."""
    writes: list[Write] = [*map(Finish, done), *map(Enqueue, enqueue), *map(SetTimer, timers)]
    writes += [*map(OpenWait, waits), *map(CloseWait, clear_waits), *map(ClearTimer, clear_timers)]
    writes += children
    if hold is not None:
        writes.append(Hold(hold))
    if status is not None:
        writes.append(SetStatus(status, output, reason))
    return writes


def write(
    store: Store, run_id: str, at: float, events: list[Event] | None = None, **changes: Any
) -> Committed:
    """Commit one hand-built transition of ``run_id`` at ``at``; it must be accepted."""
    last = store.get_run(run_id).last_seq
    transition = Transition(run_id, last, at, events or [], writes_of(**changes))
    (result,) = store.commit([transition])
    assert result.error is None, result.error
    return result


def awaiting(
    node: str, waits_for: str, until: float | None = None, details: dict[str, Any] | None = None
) -> Event:
    details = {} if details is None else details
    return NodeAwaiting(node=node, attempt=1, waits_for=waits_for, details=details, until=until)


def nodes(claimed: list[Claimed]) -> list[str]:
    return [c.lease.node for c in claimed]


# --- the waits listing --------------------------------------------------------------------


def listed_waits(store: Store) -> tuple[Wait, Wait, Wait]:
    """Three waits of two runs, listed in an order that is not their age."""
    Driver(store, make_spec("t"), "r1").start()
    Driver(store, make_spec("other"), "r2").start()
    approval = Wait("r1", "a", "approval", T0 + 3, T0 + 100, {"title": "Ship it?", "n": [1]})
    timer = Wait("r1", "b", "timer", T0 + 2, T0 + 50, {})
    signal = Wait("r2", "a", "signal", T0 + 1, None, {"name": "paid"})
    write(store, "r1", T0 + 3, [awaiting("a", "approval", T0 + 100)], waits=[approval, timer])
    write(store, "r2", T0 + 4, [awaiting("a", "signal")], waits=[signal])
    return approval, timer, signal


def read(wait: Wait, workflow: str, status: str = "running") -> Wait:
    """``wait`` as ``Store.waits`` returns it: with its run's workflow and status."""
    return dataclasses.replace(wait, workflow=workflow, run_status=status)


def test_waits_are_listed_oldest_first_with_their_runs_workflow_and_status(store: Store) -> None:
    approval, timer, signal = listed_waits(store)

    assert store.waits() == [read(signal, "other"), read(timer, "t"), read(approval, "t")]
    assert store.waits(limit=2) == [read(signal, "other"), read(timer, "t")]
    assert store.waits(waits_for="approval") == [read(approval, "t")]
    assert store.waits(run_id="r1") == [read(timer, "t"), read(approval, "t")]
    assert store.waits(run_id="r2", waits_for="signal") == [read(signal, "other")]
    assert store.waits(run_id="r2", waits_for="approval") == []
    assert store.waits(waits_for="subworkflow") == []
    assert store.waits(run_id="no-such-run") == []


def test_a_waits_run_status_is_read_when_listed(store: Store) -> None:
    approval, timer, _ = listed_waits(store)
    write(store, "r1", T0 + 5, [RunPaused(by="tester")], status="paused", hold=True)

    assert store.waits(run_id="r1") == [read(timer, "t", "paused"), read(approval, "t", "paused")]
    assert [wait.run_status for wait in store.waits(run_id="r2")] == ["running"]


def test_a_node_listed_again_is_replaced_not_duplicated(store: Store) -> None:
    approval, timer, _ = listed_waits(store)
    again = dataclasses.replace(approval, since=T0 + 10, until=None, details={"title": "Now?"})
    write(store, "r1", T0 + 10, waits=[again])

    assert store.waits(run_id="r1") == [read(timer, "t"), read(again, "t")]


def test_clear_waits_unlists_only_that_node_of_that_run(store: Store) -> None:
    _, timer, signal = listed_waits(store)

    write(store, "r1", T0 + 5, clear_waits=["a"])
    assert store.waits() == [read(signal, "other"), read(timer, "t")]  # r2's "a" stays

    write(store, "r1", T0 + 6, clear_waits=["a", "never-waited"])  # nothing left to clear
    assert store.waits() == [read(signal, "other"), read(timer, "t")]
    write(store, "r1", T0 + 7, clear_waits=["b"])
    assert store.waits() == [read(signal, "other")]


def test_a_refused_transition_lists_no_wait(store: Store) -> None:
    Driver(store, make_spec(), "r1").start()
    last = store.get_run("r1").last_seq
    wait = Wait("r1", "a", "approval", T0 + 1, None, {})
    stale = Transition("r1", last - 1, T0 + 1, [awaiting("a", "approval")], [OpenWait(wait)])

    (result,) = store.commit([stale])

    assert isinstance(result.error, ConflictError)
    assert store.waits() == []


@pytest.mark.parametrize("end", ENDS)
def test_a_run_that_ends_drops_all_its_waits(store: Store, end: str) -> None:
    _, _, signal = listed_waits(store)
    events: dict[str, Event] = {
        "succeeded": RunCompleted(output={"ok": True}),
        "cancelled": RunCancelled(reason="no longer needed", by="tester"),
    }
    ending = [events[end]] if end in events else []

    write(store, "r1", T0 + 5, ending, status=end, reason=None if end == "succeeded" else "x")

    assert store.get_run("r1").status == end
    assert store.waits(run_id="r1") == []
    assert store.waits() == [read(signal, "other")]  # another run's wait stays


def test_a_run_that_pauses_keeps_its_waits(store: Store) -> None:
    listed_waits(store)
    write(store, "r1", T0 + 5, [RunPaused(by="tester")], status="paused", hold=True)
    write(store, "r1", T0 + 6, [RunUnpaused(by="tester")], status="running", hold=False)

    assert [(wait.node, wait.run_status) for wait in store.waits(run_id="r1")] == [
        ("b", "running"),
        ("a", "running"),
    ]


# --- child runs ---------------------------------------------------------------------------


class Family:
    """A parent run whose subworkflow node ``b`` starts child runs of ``child_spec``."""

    def __init__(self, store: Store, parent_id: str = "parent-1") -> None:
        self.store = store
        self.parent = Driver(store, make_spec("parent"), parent_id)
        self.parent.start(origin="flows/parent.py")
        self.child_spec = make_spec("child")

    def child(self, child_id: str, at: float, child_input: Any = None) -> CreateChild:
        """A ``CreateChild`` with the first transition ``start_children`` would give it."""
        child_input = {"x": 1} if child_input is None else child_input
        started = RunStarted(
            workflow=self.child_spec.name, spec_version=self.child_spec.version,
            input=child_input, parent={"run_id": self.parent.run_id, "node": "b"},
        )  # fmt: skip
        state = RunState.new(compile_plan(self.child_spec), child_id)
        first = advance(child_id, state, [started], at)
        return CreateChild(self.child_spec, child_input, first, self.parent.run_id, "b")

    def starting(
        self, *children: CreateChild, at: float, expected_seq: int | None = None
    ) -> Transition:
        """The parent's transition in which ``b`` begins to wait for ``children``."""
        parent_id = self.parent.run_id
        last = self.store.get_run(parent_id).last_seq if expected_seq is None else expected_seq
        details = {"run_id": children[0].first.run_id} if children else {}
        waits = [Wait(parent_id, "b", "subworkflow", at, None, details)]
        return Transition(
            parent_id, last, at, events=[awaiting("b", "subworkflow", details=details)],
            writes=writes_of(waits=waits, children=children),
        )  # fmt: skip


def test_a_child_run_is_created_with_its_parents_transition(store: Store) -> None:
    family = Family(store)
    child = family.child("child-1", T0 + 1, {"x": 1, "name": "Zoë"})

    (result,) = store.commit([family.starting(child, at=T0 + 1)])

    assert result.error is None
    record = store.get_run("child-1")
    assert (record.parent_run, record.parent_node) == ("parent-1", "b")
    assert record.origin == "flows/parent.py"  # the parent's: the child's code is there too
    assert (record.workflow, record.spec_version) == ("child", family.child_spec.version)
    assert (record.status, record.input, record.created_at) == ("running", child.input, T0 + 1)
    assert record.last_seq == len(child.first.events)
    history = store.history("child-1")
    assert [stored.event for stored in history] == list(child.first.events)
    assert [stored.seq for stored in history] == list(range(1, len(history) + 1))
    assert history[0].prev_hash == GENESIS
    report = verify_chain(
        "child-1", store.chain_links("child-1"), record.last_seq, record.head_hash
    )
    assert report.intact, report.problems
    assert store.load_spec(family.child_spec.version) == family.child_spec
    assert [ready.node for ready in child.first.enqueued] == ["a"]
    assert store.ready_count("child-1") == 1
    assert nodes(store.claim("w1", 10, T0 + 2, 30.0, run_id="child-1")) == ["a"]
    # the parent's own transition went in with it
    assert [stored.event for stored in result.events] == list(result.transition.events)
    assert [wait.node for wait in store.waits(run_id="parent-1")] == ["b"]
    parent = store.get_run("parent-1")
    assert (parent.parent_run, parent.parent_node) == (None, None)


def test_list_runs_by_parent_lists_only_its_children(store: Store) -> None:
    family = Family(store)
    children = [family.child(child_id, T0 + 1) for child_id in ("child-1", "child-2")]
    write_children = family.starting(*children, at=T0 + 1)
    (result,) = store.commit([write_children])
    assert result.error is None
    other = Family(store, "parent-2")
    (result,) = store.commit([other.starting(other.child("child-3", T0 + 2), at=T0 + 2)])
    assert result.error is None

    listed = store.list_runs(parent="parent-1")
    assert sorted(record.id for record in listed) == ["child-1", "child-2"]
    assert listed == [store.get_run(record.id) for record in listed]
    assert [record.id for record in store.list_runs(parent="parent-2")] == ["child-3"]
    assert store.list_runs(parent="child-1") == []
    assert store.list_runs(parent="no-such-run") == []
    assert [r.id for r in store.list_runs(parent="parent-1", status="running", limit=1)] in (
        ["child-1"],
        ["child-2"],
    )
    assert store.list_runs(parent="parent-1", status="succeeded") == []
    assert store.list_runs(parent="parent-1", workflow="parent") == []
    everything = {record.id for record in store.list_runs()}
    assert everything == {"parent-1", "parent-2", "child-1", "child-2", "child-3"}


@pytest.mark.parametrize("group", [False, True], ids=["alone", "in-a-group"])
def test_a_refused_parent_transition_creates_no_child(store: Store, group: bool) -> None:
    family = Family(store)
    bystander = Driver(store, make_spec(), "bystander")
    bystander.start()
    last = store.get_run("parent-1").last_seq
    stale = family.starting(family.child("child-1", T0 + 1), at=T0 + 1, expected_seq=last - 1)
    fine = Transition("bystander", store.get_run("bystander").last_seq, T0 + 1, events=[],
                      writes=[SetTimer(Timer("bystander", "k", T0 + 5))])  # fmt: skip

    results = store.commit([stale, fine] if group else [stale])

    assert isinstance(results[0].error, ConflictError)
    with pytest.raises(RunNotFoundError):
        store.get_run("child-1")
    assert store.history("child-1") == []
    assert store.ready_count("child-1") == 0
    assert store.list_runs(parent="parent-1") == []
    assert store.waits() == []
    assert store.claim("w1", 10, T0 + 2, 30.0, run_id="child-1") == []
    assert store.get_run("parent-1").last_seq == last
    if group:  # the other transition of the group is not taken down with it
        assert results[1].error is None
        assert store.due_timers(T0 + 5, 10) == [Timer("bystander", "k", T0 + 5)]


# --- holding a paused run -----------------------------------------------------------------


def queued_at(store: Store, run_id: str, available: dict[str, float]) -> Driver:
    """A run of independent nodes, each first available at the given time."""
    driver = Driver(store, roots_spec(*available), run_id)
    first = driver.first()
    enqueue = [dataclasses.replace(r, available_at=available[r.node]) for r in first.enqueued]
    store.create_run(driver.spec, driver.input, with_enqueued(first, enqueue))
    return driver


def pause(store: Store, run_id: str, at: float) -> None:
    write(store, run_id, at, [RunPaused(by="tester")], status="paused", hold=True)


def unpause(store: Store, run_id: str, at: float) -> None:
    write(store, run_id, at, [RunUnpaused(by="tester")], status="running", hold=False)


def test_a_held_run_has_nothing_to_claim_however_late(store: Store) -> None:
    # "busy" is leased before the pause; "a" and "b" are queued; "later" waits a backoff
    available = {"busy": T0, "a": T0 + 2, "b": T0 + 1, "later": T0 + 100}
    queued_at(store, "run-1", available)
    queued_at(store, "bystander", {"x": T0})
    (busy,) = store.claim("w1", 1, T0 + 0.5, 30.0, run_id="run-1")
    assert busy.lease.node == "busy"

    pause(store, "run-1", T0 + 3)

    far = T0 + TEN_YEARS
    assert store.claim("w2", 10, far, 30.0, run_id="run-1") == []
    assert store.claim("w2", 10, far, 30.0, run_ids=["run-1"]) == []
    assert store.claim("w2", 10, far, 30.0, queues=["default"], run_ids=["run-1"]) == []
    # the only thing anyone can claim is another run's work
    assert [(c.lease.run_id, c.lease.node) for c in store.claim("w2", 10, far, 30.0)] == [
        ("bystander", "x")
    ]
    assert store.ready_count("run-1") == 4  # held, not dropped
    # the attempt leased before the pause stays its owner's, who can renew and finish it
    assert [(lease.node, lease.owner) for lease in store.leases("run-1")] == [("busy", "w1")]
    assert store.renew("w1", T0 + 4, 30.0) == 1
    assert store.reclaim(T0 + 20) == []
    done = NodeSucceeded(node="busy", attempt=1, output="done while paused")
    write(store, "run-1", T0 + 5, [done], done=[busy.lease])
    assert store.leases("run-1") == []
    assert store.ready_count("run-1") == 3
    assert store.claim("w2", 10, far, 30.0, run_id="run-1") == []


def test_releasing_a_hold_restores_the_queue_as_it_was(store: Store) -> None:
    available = {"busy": T0, "a": T0 + 2, "b": T0 + 1, "later": T0 + 100}
    queued_at(store, "run-1", available)
    (busy,) = store.claim("w1", 1, T0 + 0.5, 30.0, run_id="run-1")
    pause(store, "run-1", T0 + 3)
    assert store.claim("w2", 10, T0 + 50, 30.0) == []

    unpause(store, "run-1", T0 + 4)

    assert store.leases("run-1") == [busy.lease]
    assert nodes(store.claim("w2", 1, T0 + 50, 30.0)) == ["b"]  # the oldest first, as before
    assert nodes(store.claim("w2", 1, T0 + 50, 30.0)) == ["a"]
    assert store.claim("w2", 10, T0 + 99.5, 30.0) == []  # the backoff still applies
    assert nodes(store.claim("w2", 10, T0 + 100, 30.0)) == ["later"]


def test_holding_twice_and_releasing_twice_changes_nothing_more(store: Store) -> None:
    queued_at(store, "run-1", {"a": T0 + 1, "later": T0 + 100})
    pause(store, "run-1", T0 + 2)
    write(store, "run-1", T0 + 3, hold=True)

    unpause(store, "run-1", T0 + 4)  # one release undoes both holds
    assert nodes(store.claim("w1", 10, T0 + 5, 30.0)) == ["a"]

    write(store, "run-1", T0 + 6, hold=False)  # and a second one does not go further back
    assert store.claim("w1", 10, T0 + 99.5, 30.0) == []
    assert nodes(store.claim("w1", 10, T0 + 100, 30.0)) == ["later"]


def test_a_hold_also_holds_what_its_own_transition_enqueues(store: Store) -> None:
    queued_at(store, "run-1", {"a": T0})
    extra = Ready(node="a-again", attempt=2, available_at=T0 + 1)
    pause_at = T0 + 2
    write(store, "run-1", pause_at, [RunPaused(by="tester")], status="paused", hold=True,
          enqueue=[extra])  # fmt: skip

    assert store.ready_count("run-1") == 2
    assert store.claim("w1", 10, T0 + TEN_YEARS, 30.0) == []
    unpause(store, "run-1", T0 + 3)
    assert sorted(nodes(store.claim("w1", 10, T0 + 3, 30.0))) == ["a", "a-again"]


@pytest.mark.parametrize("how", ["lease-expired", "owner-died"])
def test_an_attempt_reclaimed_while_paused_goes_back_on_hold(store: Store, how: str) -> None:
    queued_at(store, "run-1", {"a": T0, "b": T0})
    (leased,) = store.claim("w1", 1, T0 + 1, 30.0)
    pause(store, "run-1", T0 + 2)

    if how == "lease-expired":
        reclaimed = store.reclaim(T0 + 40)
    else:
        reclaimed = store.reclaim(T0 + 3, dead_owners=["w1"], reason="process 7 exited")

    assert [stored.event.node for stored in reclaimed] == [leased.lease.node]  # type: ignore[attr-defined]
    assert store.leases("run-1") == []
    assert store.ready_count("run-1") == 2
    assert store.claim("w2", 10, T0 + TEN_YEARS, 30.0) == []
    assert store.get_run("run-1").status == "paused"

    unpause(store, "run-1", T0 + 50)
    assert sorted(nodes(store.claim("w2", 10, T0 + 50, 30.0))) == ["a", "b"]


def test_an_attempt_reclaimed_after_the_unpause_goes_to_the_free_queue(store: Store) -> None:
    queued_at(store, "run-1", {"a": T0})
    pause(store, "run-1", T0 + 1)
    unpause(store, "run-1", T0 + 2)
    (leased,) = store.claim("w1", 1, T0 + 3, 30.0)

    assert len(store.reclaim(T0 + 40)) == 1

    assert [c.lease.node for c in store.claim("w2", 10, T0 + 40, 30.0)] == [leased.lease.node]


# --- timers for another run ---------------------------------------------------------------


def test_a_timer_for_another_run_is_stored_for_that_run(store: Store) -> None:
    Driver(store, make_spec("parent"), "parent-1").start()
    Driver(store, make_spec("child"), "child-1").start()
    ended = {"run_id": "child-1", "status": "succeeded", "output": {"n": 1}, "reason": None}
    told = Timer("parent-1", "child:b", T0 + 5, ended)
    own = Timer("child-1", "deadline", T0 + 3600)
    write(store, "child-1", T0 + 4, timers=[own])

    # the child ends: its own timers go, the one it leaves its parent stays
    write(store, "child-1", T0 + 5, [RunCompleted(output={"n": 1})], timers=[told],
          status="succeeded", output={"n": 1})  # fmt: skip

    assert store.due_timers(T0 + 4.5, 10) == []
    assert store.due_timers(T0 + 5, 10) == [told]
    assert store.due_timers(T0 + TEN_YEARS, 10) == [told]
    # the parent clears it as its own timer; a timer of the same key in another run stays
    write(store, "parent-1", T0 + 6, [ChildRunEnded(node="b", **ended)],  # type: ignore[arg-type]
          clear_timers=["child:b"])  # fmt: skip
    assert store.due_timers(T0 + TEN_YEARS, 10) == []


def test_a_run_clearing_its_timers_leaves_those_it_set_for_another_run(store: Store) -> None:
    Driver(store, make_spec(), "parent-1").start()
    Driver(store, make_spec(), "child-1").start()
    told = Timer("parent-1", "child:b", T0 + 5, {"status": "failed"})
    write(store, "child-1", T0 + 4, timers=[told, Timer("child-1", "child:b", T0 + 6)])

    write(store, "child-1", T0 + 5, clear_timers=["child:b"])

    assert store.due_timers(T0 + 10, 10) == [told]


@pytest.mark.parametrize("end", ENDS)
def test_no_timer_is_written_for_a_run_that_has_ended(store: Store, end: str) -> None:
    Driver(store, make_spec(), "parent-1").start()
    Driver(store, make_spec(), "child-1").start()
    Driver(store, make_spec(), "sibling").start()
    write(store, "parent-1", T0 + 1, status=end)
    late = Timer("parent-1", "cancel", T0 + 2, {"reason": "too late"})
    live = Timer("sibling", "child:b", T0 + 2, {"status": "cancelled"})

    result = write(store, "child-1", T0 + 2, timers=[late, live])

    assert len(result.transition.of(SetTimer)) == 2  # accepted, the late timer silently dropped
    assert store.due_timers(T0 + TEN_YEARS, 10) == [live]


# --- SQLite: the migration ----------------------------------------------------------------


def test_a_fresh_store_is_at_the_newest_schema_version(sqlite_store: SQLiteStore) -> None:
    migrations = load_migrations("keel.store.sqlite.migrations")
    assert sqlite_store.schema_version() == len(migrations)
    names = raw_sql(sqlite_store.path, "SELECT version, name FROM schema_migrations")
    assert names == [(m.version, m.name) for m in migrations]
    assert names[4:6] == [(5, "waits"), (6, "limits")]


def test_a_version_4_database_is_upgraded_with_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "keel.db"
    first_four = [m for m in load_migrations("keel.store.sqlite.migrations") if m.version <= 4]
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in first_four:
        conn.executescript(migration.sql)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany(
        "INSERT INTO schema_migrations VALUES (?, ?)", [(m.version, m.name) for m in first_four]
    )
    spec = make_spec("old")
    conn.execute(
        "INSERT INTO specs VALUES (?, ?, ?, ?)",
        (spec.version, spec.name, spec.model_dump_json(), T0),
    )
    conn.execute(
        "INSERT INTO runs (id, workflow, spec_version, status, input, origin, created_at, "
        "updated_at, last_seq, head_hash) VALUES ('old-1', 'old', ?, 'running', '{}', 'o.py', "
        "?, ?, 0, ?)",
        (spec.version, T0, T0, GENESIS),
    )
    conn.close()

    store = SQLiteStore(path)
    try:
        assert store.schema_version() == len(load_migrations("keel.store.sqlite.migrations"))
        old = store.get_run("old-1")
        assert (old.workflow, old.origin, old.parent_run, old.parent_node) == (
            "old", "o.py", None, None,
        )  # fmt: skip
        assert store.list_runs(parent="old-1") == []
        assert store.waits() == []
        write(store, "old-1", T0 + 1, waits=[Wait("old-1", "a", "approval", T0 + 1, None, {})])
        assert [(wait.run_id, wait.workflow) for wait in store.waits()] == [("old-1", "old")]
    finally:
        store.close()


#: how far schema 7 moved a paused run's queued attempts ahead to hold them
OLD_HOLD = 1e12


def test_a_version_7_database_keeps_its_held_attempts_held_until_released(
    tmp_path: Path,
) -> None:
    """0008 marks the attempts that schema 7 held by moving them ``OLD_HOLD`` seconds
    ahead as held, with their own times back: still out of reach, released as they were."""
    path = tmp_path / "keel.db"
    first_seven = [m for m in load_migrations("keel.store.sqlite.migrations") if m.version <= 7]
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in first_seven:
        conn.executescript(migration.sql)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany(
        "INSERT INTO schema_migrations VALUES (?, ?)", [(m.version, m.name) for m in first_seven]
    )
    spec = roots_spec("busy", "a", "b", "later")
    conn.execute(
        "INSERT INTO specs VALUES (?, ?, ?, ?)",
        (spec.version, spec.name, spec.model_dump_json(), T0),
    )
    for run_id, status in (("run-1", "paused"), ("bystander", "running")):
        conn.execute(
            "INSERT INTO runs (id, workflow, spec_version, status, input, origin, created_at, "
            "updated_at, last_seq, head_hash) VALUES (?, 'roots', ?, ?, '{}', NULL, ?, ?, 0, ?)",
            (run_id, spec.version, status, T0, T0, GENESIS),
        )
    conn.executemany(
        "INSERT INTO ready (run_id, node, item, attempt, queue, priority, available_at, owner, "
        "lease_expires) VALUES (?, ?, -1, 1, 'default', 0, ?, ?, ?)",
        [("run-1", "busy", T0, "w1", T0 + 30),  # leased before the pause: not held
         ("run-1", "a", T0 + 2 + OLD_HOLD, None, None),
         ("run-1", "b", T0 + 1 + OLD_HOLD, None, None),
         ("run-1", "later", T0 + 100 + OLD_HOLD, None, None),
         ("bystander", "x", T0, None, None)],
    )  # fmt: skip
    conn.close()

    store = SQLiteStore(path)
    try:
        assert store.schema_version() == len(load_migrations("keel.store.sqlite.migrations"))
        rows = raw_sql(path, "SELECT node, held, available_at FROM ready ORDER BY node")
        assert [(node, held) for node, held, _ in rows] == [
            ("a", 1), ("b", 1), ("busy", 0), ("later", 1), ("x", 0),
        ]  # fmt: skip
        at = {node: available_at for node, _, available_at in rows}
        for node, due in {"a": T0 + 2, "b": T0 + 1, "busy": T0, "later": T0 + 100}.items():
            assert at[node] == pytest.approx(due, abs=1e-4)

        far = T0 + TEN_YEARS
        assert store.claim("w2", 10, far, 30.0, run_id="run-1") == []
        assert nodes(store.claim("w2", 10, far, 30.0)) == ["x"]
        assert store.ready_count("run-1") == 4

        unpause(store, "run-1", T0 + 3)

        assert [lease.node for lease in store.leases("run-1")] == ["busy"]
        assert nodes(store.claim("w2", 1, T0 + 50, 30.0)) == ["b"]  # the oldest first
        assert nodes(store.claim("w2", 1, T0 + 50, 30.0)) == ["a"]
        assert store.claim("w2", 10, T0 + 99.5, 30.0) == []  # its backoff still applies
        assert nodes(store.claim("w2", 10, T0 + 100, 30.0)) == ["later"]
    finally:
        store.close()


def test_an_attempt_held_by_a_keel_from_before_the_migration_is_released_too(
    tmp_path: Path,
) -> None:
    """A keel of schema 7 still running while a new one migrated the file holds a paused
    run's attempt its own way (``OLD_HOLD`` seconds ahead): unpausing releases it all
    the same, at its own time."""
    store = SQLiteStore(tmp_path / "keel.db")
    try:
        queued_at(store, "run-1", {"a": T0 + 2})
        pause(store, "run-1", T0 + 3)
        raw_sql(store.path, f"UPDATE ready SET held = 0, available_at = available_at + {OLD_HOLD}")
        assert store.claim("w2", 10, T0 + TEN_YEARS, 30.0) == []

        unpause(store, "run-1", T0 + 4)

        (row,) = raw_sql(store.path, "SELECT held, available_at FROM ready")
        assert row[0] == 0
        assert row[1] == pytest.approx(T0 + 2, abs=1e-4)
        assert nodes(store.claim("w2", 10, T0 + 5, 30.0)) == ["a"]
    finally:
        store.close()
