"""What a run that has not ended is doing (``keel runs``, ``keel show``), read from each
store's leases, ready queue and waits: queued with no worker, running on a worker (and
no longer, once its lease expired), waiting for a person."""

from __future__ import annotations

from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.views.activity import run_activity
from keel.spec import parse_spec
from keel.store import Store

ONE_TASK = parse_spec({"name": "w", "nodes": [{"id": "a", "task": "json:dumps"}]})


def test_a_run_no_worker_took_is_queued(store: Store) -> None:
    clock = FakeClock()
    record = start_run(store, ONE_TASK, {}, clock=clock)
    activity = run_activity(store, record, clock.now())
    assert activity is not None
    assert (activity.kind, activity.text) == ("queued", "queued, waiting for a worker")


def test_a_run_held_by_a_worker_is_running_on_it_until_its_lease_expires(store: Store) -> None:
    clock = FakeClock()
    record = start_run(store, ONE_TASK, {}, clock=clock)
    (claimed,) = store.claim("host-1:4242:7:abc", 1, clock.now(), 30.0)
    assert claimed.lease.run_id == record.id

    activity = run_activity(store, record, clock.now())
    assert activity is not None
    assert (activity.kind, activity.text, activity.short) == (
        "running", "running on host-1:4242", "running")  # fmt: skip
    clock.advance(60)  # the holder stopped renewing its lease
    expired = run_activity(store, record, clock.now())
    assert expired is not None
    assert expired.kind == "queued"
    assert expired.text.startswith("held by a worker that stopped")


def test_a_run_waiting_for_a_person_says_so(store: Store) -> None:
    clock = FakeClock()
    spec = parse_spec({"name": "w", "nodes": [{"id": "ok", "kind": "approval", "title": "OK?"}]})
    record = start_run(store, spec, {}, clock=clock)
    activity = run_activity(store, record, clock.now())
    assert activity is not None
    assert (activity.kind, activity.text, activity.short) == (
        "waiting", "waiting for approval", "waiting for approval")  # fmt: skip
