"""Wake-ups between stores on one SQLite file (``keel.store.sqlite.wake``): a commit that
leaves work wakes the other listeners once it is visible; a write rolled back or a
transition refused wakes nobody; a store does not wake itself; a dead listener's socket is
removed by the next send; stopping removes the socket.

"Nothing was sent" is shown without waiting on a clock: after the action, another store
commits a marker run on a queue of its own, and everything received before the marker is
what the action sent (datagrams from one socket to another arrive in order)."""

from __future__ import annotations

import itertools
import os
import queue
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.engine import NodeSucceeded, RunCancelled
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store.sqlite import SQLiteStore, wake
from keel.store.wakeups import Wakeup, WorkQueued
from tests.contract.conftest import Driver, raw_sql

#: seconds to wait for a wake-up that must come (a hang guard, not a timing assertion)
BOUND = 20.0
_runs = itertools.count()


def queued_spec(queue_name: str) -> WorkflowSpec:
    """``a`` then ``b``, both on ``queue_name``."""
    return parse_spec({"name": f"on-{queue_name}", "nodes": [
        {"id": "a", "task": "m:f", "queue": queue_name},
        {"id": "b", "task": "m:f", "after": ["a"], "queue": queue_name},
    ]})  # fmt: skip


class Inbox:
    """What a listener was woken with."""

    def __init__(self) -> None:
        self.got: queue.Queue[Wakeup] = queue.Queue()

    def next(self) -> Wakeup:
        return self.got.get(timeout=BOUND)

    def until_marker(self, sender: SQLiteStore) -> set[Wakeup]:
        """Have ``sender`` start a marker run; everything woken with before it."""
        marker = f"marker-{next(_runs)}"
        Driver(sender, queued_spec(marker), marker).start()
        seen: set[Wakeup] = set()
        while True:
            wakeup = self.next()
            if isinstance(wakeup, WorkQueued) and wakeup.queue == marker:
                return seen
            seen.add(wakeup)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "keel.db"


@pytest.fixture
def stores(path: Path) -> Iterator[tuple[SQLiteStore, SQLiteStore]]:
    listener, sender = SQLiteStore(path), SQLiteStore(path)
    yield listener, sender
    listener.close()
    sender.close()


def queues(wakeups: set[Wakeup]) -> set[str | None]:
    return {w.queue for w in wakeups if isinstance(w, WorkQueued)}


def test_a_commit_wakes_another_store_once_it_is_visible(
    stores: tuple[SQLiteStore, SQLiteStore], path: Path
) -> None:
    listener, sender = stores
    got: queue.Queue[tuple[Wakeup, list[tuple[Any, ...]]]] = queue.Queue()
    # what a woken worker would find, looked up from the listener's thread as it is woken
    stop = listener.listen(lambda w: got.put((w, raw_sql(path, "SELECT id FROM runs"))))
    assert stop is not None
    driver = Driver(sender, queued_spec("mail"), "run-1")
    driver.start()
    wakeup, runs = got.get(timeout=BOUND)
    assert queues({wakeup}) == {"mail"}
    assert runs == [("run-1",)]
    (a,) = driver.claim()
    driver.succeed(a.lease, "A")  # queues b
    wakeup, _ = got.get(timeout=BOUND)
    assert queues({wakeup}) == {"mail"}


def test_a_write_rolled_back_wakes_nobody(stores: tuple[SQLiteStore, SQLiteStore]) -> None:
    listener, sender = stores
    inbox = Inbox()
    listener.listen(inbox.got.put)
    dialect = sender.dialect

    def rolled_back() -> None:
        with dialect.write() as cur:
            dialect.notify(cur, {WorkQueued("lost")})
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        rolled_back()
    assert inbox.until_marker(sender) == set()


def test_a_refused_transition_wakes_nobody_and_its_group_only_for_the_rest(
    stores: tuple[SQLiteStore, SQLiteStore],
) -> None:
    listener, sender = stores
    inbox = Inbox()
    listener.listen(inbox.got.put)
    refused = Driver(sender, queued_spec("refused"), "refused")
    refused.start()
    (a,) = refused.claim()
    stale = refused.step([NodeSucceeded(node="a", attempt=a.lease.attempt, output=1)],
                         (a.lease,))  # fmt: skip
    refused.commit(refused.step([RunCancelled(reason="stop", by="tester")]))
    kept = Driver(sender, queued_spec("kept"), "kept")
    kept.start()
    (k,) = kept.claim()
    fine = kept.step([NodeSucceeded(node="a", attempt=k.lease.attempt, output=1)], (k.lease,))
    assert inbox.until_marker(sender)  # the starts and the cancel, whatever they woke
    results = sender.commit([stale, fine])
    assert results[0].error is not None
    assert results[1].error is None
    assert queues(inbox.until_marker(sender)) == {"kept"}
    (alone,) = sender.commit([stale])
    assert alone.error is not None
    assert inbox.until_marker(sender) == set()


def test_a_store_does_not_wake_itself(stores: tuple[SQLiteStore, SQLiteStore]) -> None:
    listener, sender = stores
    inbox = Inbox()
    listener.listen(inbox.got.put)
    Driver(listener, queued_spec("own"), "own").start()
    assert inbox.until_marker(sender) == set()


def test_a_reclaimed_attempt_wakes_the_other_workers(
    stores: tuple[SQLiteStore, SQLiteStore],
) -> None:
    listener, sender = stores
    inbox = Inbox()
    listener.listen(inbox.got.put)
    driver = Driver(sender, queued_spec("again"), "run-r")
    driver.start()
    (claimed,) = driver.claim("w1", lease_for=1.0)
    assert queues(inbox.until_marker(sender)) == {"again"}  # the start's own wake-up

    (reclaimed,) = sender.reclaim(claimed.lease.expires_at + 1)

    assert reclaimed.event.node == "a"
    assert queues(inbox.until_marker(sender)) == {"again"}


def test_a_dead_listeners_socket_is_removed_by_the_next_send(path: Path) -> None:
    listener = SQLiteStore(path)
    inbox = Inbox()
    listener.listen(inbox.got.put)
    folder = path.with_name(path.name + ".wake")
    dead = folder / "1-deadbeef.sock"
    opened = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)  # a short name for a deep path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as gone:
            gone.bind(f"/proc/self/fd/{opened}/{dead.name}")  # closed, its file left behind
    finally:
        os.close(opened)
    assert dead.exists()
    sender = SQLiteStore(path)  # lists the folder at its first send
    try:
        Driver(sender, queued_spec("after"), "after").start()
        assert queues({inbox.next()}) == {"after"}  # the live listener is still woken
        assert not dead.exists()
    finally:
        sender.close()
        listener.close()


def test_stopping_removes_the_socket_and_closing_stops_them_all(path: Path) -> None:
    store = SQLiteStore(path)
    folder = path.with_name(path.name + ".wake")
    stop = store.listen(lambda wakeup: None)
    assert stop is not None
    assert len(list(folder.iterdir())) == 1
    assert folder.stat().st_mode & 0o777 == 0o700
    stop()
    assert list(folder.iterdir()) == []
    store.listen(lambda wakeup: None)
    store.listen(lambda wakeup: None)
    assert len(list(folder.iterdir())) == 2
    store.close()
    assert list(folder.iterdir()) == []


def test_a_deep_folder_still_wakes(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * max(1, 110 - len(str(tmp_path))))
    deep.mkdir()
    listener, sender = SQLiteStore(deep / "keel.db"), SQLiteStore(deep / "keel.db")
    try:
        inbox = Inbox()
        assert listener.listen(inbox.got.put) is not None
        Driver(sender, queued_spec("deep"), "deep").start()
        assert queues({inbox.next()}) == {"deep"}
    finally:
        sender.close()
        listener.close()


def test_without_a_socket_the_worker_polls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    memory = SQLiteStore(":memory:")
    assert memory.listen(lambda wakeup: None) is None
    memory.close()
    monkeypatch.setattr(wake, "_PROC_FDS", str(tmp_path / "no-proc"))
    deep = tmp_path / ("d" * max(1, 110 - len(str(tmp_path))))
    deep.mkdir()
    far = SQLiteStore(deep / "keel.db")
    assert far.listen(lambda wakeup: None) is None
    Driver(far, queued_spec("far"), "far").start()  # commits all the same
    far.close()
