"""Checkpoints workers sign by themselves (``[audit] checkpoint_every``): one per period
whatever the number of processes looking, each one a checkpoint of every run that
verifies."""

from __future__ import annotations

import threading

from keel.audit.checkpoints import check_checkpoint, signed_heads
from keel.audit.signing import SigningKey
from keel.runtime.checkpointing import CheckpointPump, start_checkpoints
from keel.runtime.clock import FakeClock
from keel.store import Store
from tests.contract.conftest import T0, Driver, roots_spec

HOUR = 3600.0


def test_a_periodic_checkpoint_is_refused_when_one_was_made_this_period(store: Store) -> None:
    key = SigningKey.generate()
    Driver(store, roots_spec("a"), "run-1").start()
    first = signed_heads(store, key, at=T0, by="w1")
    public = key.public_key.to_text()

    made = store.add_periodic_checkpoint(first, public, T0 - HOUR)
    again = store.add_periodic_checkpoint(first, public, T0 - HOUR)
    of_one_workflow = signed_heads(store, key, at=T0 + HOUR, by="me", workflow="roots")
    store.add_checkpoint(of_one_workflow, public)  # made by hand: not every run's
    later = store.add_periodic_checkpoint(signed_heads(store, key, at=T0 + HOUR, by="w2"),
                                          public, T0 + 1)  # fmt: skip

    assert made is not None
    assert again is None
    assert later is not None
    assert [(c.by, c.workflow) for c in store.checkpoints()] == [
        ("w2", None),
        ("me", "roots"),
        ("w1", None),
    ]


def test_pumps_of_several_processes_sign_one_checkpoint_per_period(store: Store) -> None:
    key = SigningKey.generate()
    Driver(store, roots_spec("a"), "run-1").start()
    clock = FakeClock(T0)
    pumps = [CheckpointPump(store, key, every=HOUR, owner=f"w{n}", clock=clock) for n in (1, 2)]

    made = []
    for _ in range(3):  # three periods; each pump looks twice a period
        for _ in range(2):
            made += [pump.run(clock.now()) for pump in pumps]
            clock.advance(HOUR / 2)
        Driver(store, roots_spec("a"), f"run-{clock.now()}").start()

    stored = [m for m in made if m is not None]
    assert len(stored) == 3
    listed = store.checkpoints()
    assert [c.id for c in listed] == sorted(stored, reverse=True)
    assert [c.runs for c in reversed(listed)] == [1, 2, 3]
    for summary in listed:
        found = store.checkpoint(summary.id)
        assert found is not None
        assert check_checkpoint(store, found, {key.key_id: key.public_key}).ok


def test_no_key_or_no_period_starts_no_thread(store: Store) -> None:
    stop = threading.Event()
    assert start_checkpoints(store, None, HOUR, stop) is None
    assert start_checkpoints(store, SigningKey.generate(), None, stop) is None


def test_the_thread_signs_one_at_once_then_stops(store: Store) -> None:
    Driver(store, roots_spec("a"), "run-1").start()
    stop = threading.Event()
    thread = start_checkpoints(store, SigningKey.generate(), HOUR, stop, clock=FakeClock(T0),
                               owner="w1")  # fmt: skip
    assert thread is not None
    for _ in range(200):
        if store.checkpoints():
            break
        stop.wait(0.05)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert [(c.by, c.runs) for c in store.checkpoints()] == [("w1", 1)]
