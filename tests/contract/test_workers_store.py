"""The store's list of live workers (both backends): a worker registers when it starts,
is seen again with each heartbeat, and is removed when it stops cleanly; readers ask
for the workers seen since a moment. A killed worker's row stays until it is forgotten;
it simply stops being seen."""

from __future__ import annotations

from keel.store import Store, WorkerRecord
from tests.contract.conftest import T0


def worker(owner: str = "h1:101:77:aa", queues: tuple[str, ...] | None = ("default",),
           at: float = T0) -> WorkerRecord:  # fmt: skip
    host, pid, _, _ = owner.split(":")
    return WorkerRecord(owner, host, int(pid), queues, started_at=at, seen_at=at)


def test_a_registered_worker_is_live_until_it_is_no_longer_seen(store: Store) -> None:
    registered = worker(queues=("default", "special"))
    store.register_worker(registered)

    assert store.live_workers(seen_since=T0 - 30) == [registered]
    assert store.live_workers(seen_since=T0) == [registered]  # seen exactly then: live
    assert store.live_workers(seen_since=T0 + 1) == []


def test_a_heartbeat_moves_seen_at_only(store: Store) -> None:
    store.register_worker(worker())

    assert store.worker_seen("h1:101:77:aa", T0 + 10) is True

    (seen,) = store.live_workers(seen_since=T0 + 5)
    assert (seen.started_at, seen.seen_at) == (T0, T0 + 10)
    assert seen.queues == ("default",)


def test_a_heartbeat_of_a_worker_the_store_does_not_know_says_so(store: Store) -> None:
    assert store.worker_seen("h9:1:1:zz", T0) is False
    assert store.live_workers(seen_since=0.0) == []


def test_registering_again_replaces_the_row(store: Store) -> None:
    store.register_worker(worker(queues=("a",)))
    again = worker(queues=None, at=T0 + 5)

    store.register_worker(again)

    assert store.live_workers(seen_since=0.0) == [again]


def test_a_worker_of_every_queue_takes_any_queue(store: Store) -> None:
    store.register_worker(worker("h1:1:1:aa", queues=None))
    store.register_worker(worker("h2:2:2:bb", queues=("special",), at=T0 + 1))

    every, special = store.live_workers(seen_since=0.0)  # oldest first

    assert every.queues is None
    assert [every.takes(q) for q in ("default", "special")] == [True, True]
    assert [special.takes(q) for q in ("default", "special")] == [False, True]
    assert (special.host, special.pid) == ("h2", 2)


def test_a_worker_that_stops_is_removed(store: Store) -> None:
    store.register_worker(worker("h1:1:1:aa"))
    store.register_worker(worker("h2:2:2:bb"))

    store.unregister_worker("h1:1:1:aa")
    store.unregister_worker("h7:7:7:gone")  # unknown: nothing to do

    assert [w.owner for w in store.live_workers(seen_since=0.0)] == ["h2:2:2:bb"]


def test_workers_not_seen_for_long_are_forgotten(store: Store) -> None:
    store.register_worker(worker("h1:1:1:aa", at=T0))
    store.register_worker(worker("h2:2:2:bb", at=T0 + 100))

    assert store.forget_workers(seen_before=T0 + 50) == 1

    assert [w.owner for w in store.live_workers(seen_since=0.0)] == ["h2:2:2:bb"]
    assert store.worker_seen("h1:1:1:aa", T0 + 200) is False


def test_a_worker_of_some_runs_only_is_kept_with_them_and_takes_no_queue(store: Store) -> None:
    only = WorkerRecord("h1:1:1:aa", "h1", 1, None, T0, T0, runs=("r1", "r2"))
    store.register_worker(only)

    (listed,) = store.live_workers(seen_since=0.0)

    assert listed == only
    assert listed.runs == ("r1", "r2")
    assert listed.takes("default") is False  # it executes its runs, no other run's steps
