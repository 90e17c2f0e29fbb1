"""The pumps beside the worker loop, each alone, on a real SQLite store with a fake clock.

Each pump holds its own pacing; these tests move the fake clock and check what the pump
did in the store (timers fired and cleared, notifications delivered or given up, leases
renewed or reclaimed, attempts claimed). Nothing sleeps: deliveries run inline, and the
fake clock's waits return at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keel.engine.events import (
    ErrorInfo,
    LateResultDiscarded,
    NodeReclaimed,
    NodeStarted,
    NodeSucceeded,
    RunDeadlineExceeded,
    RunFailed,
    TimerFired,
)
from keel.runtime.clock import FakeClock, Inbox
from keel.runtime.execution.invoke import Outcome
from keel.runtime.notifications.outbox import FIRST_REDELIVERY, MAX_DELIVERIES
from keel.runtime.operations.control import start_run
from keel.runtime.runs import RunCache
from keel.runtime.worker.claiming import Claiming
from keel.runtime.worker.late_results import LateResults
from keel.runtime.worker.lease_keeping import LeaseKeeper
from keel.runtime.worker.outbox_pump import OutboxPump
from keel.runtime.worker.outcomes import Done, Outcomes
from keel.runtime.worker.recording import Recorder
from keel.runtime.worker.run_watch import RunWatch
from keel.runtime.worker.timer_pump import TimerPump
from keel.runtime.worker.wakeups import Wakeups
from keel.spec import WorkflowSpec, parse_spec
from keel.store.records import Lease, StoredEvent
from keel.store.sqlite import SQLiteStore
from keel.store.wakeups import MaybeMissed, OutboxFilled, TimerSet, Wakeup, WorkQueued
from keel.store.writes import Transition
from tests.unit import notify_targets
from tests.unit.outbox_rows import outbox as outbox_rows

TASKS = "tests.unit.runtime_tasks"
OWNER = "this-host.invalid:1:1:aaaaaa"
OTHER = "another-host.invalid:4242:100:cafe01"
LEASE_FOR = 30.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(store: SQLiteStore) -> RunCache:
    return RunCache(store)


def echo(node: str = "a", **fields: Any) -> dict[str, Any]:
    return {"id": node, "task": f"{TASKS}:echo", "args": {"value": 1}, **fields}


def spec_of(*nodes: dict[str, Any], **fields: Any) -> WorkflowSpec:
    return parse_spec({"name": "w", "nodes": list(nodes), **fields})


def events_of(store: SQLiteStore, run_id: str, kind: type[Any]) -> list[Any]:
    return [stored.event for stored in store.history(run_id) if isinstance(stored.event, kind)]


def committer(store: SQLiteStore, cache: RunCache) -> Callable[[Transition], int]:
    """Commits a transition no lease waits on, as the worker does; 1 if it went in."""

    def commit(transition: Transition) -> int:
        (result,) = store.commit([transition])
        if result.error is not None:
            cache.drop(transition.run_id)
            return 0
        cache.settle(result)
        return 1

    return commit


def claiming(store: SQLiteStore, clock: FakeClock, pause: float = 0.05) -> Claiming:
    return Claiming(store, OWNER, clock, lease_for=LEASE_FOR, queues=None, pause=pause)


# --- the clock's waits ------------------------------------------------------------------------


def test_the_fake_clock_skips_pacing_time_when_it_would_wait_and_keeps_the_run_clock(
    clock: FakeClock,
) -> None:
    inbox: Inbox[str] = Inbox()
    started, paced = clock.now(), clock.monotonic()

    assert clock.wait(inbox, 2.5) is None
    assert clock.sleep(1.5) is False
    assert (clock.now(), clock.monotonic()) == (started, paced + 4.0)

    inbox.put("there")
    assert clock.wait(inbox, 2.5) == "there"  # an item there: taken, no time passes
    assert clock.monotonic() == paced + 4.0

    clock.advance(10)
    assert (clock.now(), clock.monotonic()) == (started + 10, paced + 14.0)


def test_the_fake_clock_sleep_says_when_stop_is_set(clock: FakeClock) -> None:
    import threading

    stop = threading.Event()
    assert clock.sleep(1.0, stop) is False
    stop.set()
    assert clock.sleep(1.0, stop) is True


# --- timers -----------------------------------------------------------------------------------


def test_the_timer_pump_fires_a_due_timer_once_and_clears_it(
    store: SQLiteStore, clock: FakeClock, cache: RunCache
) -> None:
    record = start_run(store, spec_of(echo(), deadline=60), {}, clock=clock)
    pump = TimerPump(store, cache, committer(store, cache), every=0.5)

    assert pump.run(clock.now()) == 0  # the deadline is not due yet
    assert store.get_run(record.id).status == "running"
    assert pump.next_at() == clock.now() + 0.5
    clock.advance(61)
    assert pump.run(clock.now()) == 1

    assert events_of(store, record.id, RunDeadlineExceeded)
    assert store.get_run(record.id).status == "failed"
    assert store.due_timers(clock.now() + 3600, 10) == []
    assert pump.fire(clock.now()) == 0, "a timer fires once"


def test_the_timer_pump_looks_again_only_when_its_pace_says(
    store: SQLiteStore, clock: FakeClock, cache: RunCache
) -> None:
    record = start_run(store, spec_of(echo(), deadline=60), {}, clock=clock)
    pump = TimerPump(store, cache, committer(store, cache), every=100.0)
    pump.run(clock.now())
    clock.advance(61)  # the deadline is due, but the pump looked less than ``every`` ago

    assert not pump.due(clock.now())
    assert pump.run(clock.now()) == 0
    assert store.get_run(record.id).status == "running"
    pump.look_now()  # (a commit set a timer due at once; a lost notification)
    assert pump.run(clock.now()) == 1
    assert store.get_run(record.id).status == "failed"


def test_listening_the_timer_pump_sleeps_until_the_next_timer(
    store: SQLiteStore, clock: FakeClock, cache: RunCache
) -> None:
    waits = spec_of({"id": "wait", "kind": "timer", "duration": 3600}, echo(after=["wait"]))
    record = start_run(store, waits, {}, clock=clock)
    due = clock.now() + 3600
    pump = TimerPump(store, cache, committer(store, cache), every=0.5, fallback=7200.0)

    assert pump.run(clock.now()) == 0
    assert pump.next_at() == due  # the next timer, sooner than the fallback look

    pump.wake_at(due - 100)  # a new timer was notified
    assert pump.next_at() == due - 100
    clock.advance(3600)
    assert pump.run(clock.now()) == 1
    (fired,) = events_of(store, record.id, TimerFired)
    assert fired.node == "wait"
    assert store.due_timers(clock.now(), 10) == [], "a fired timer is cleared"
    assert store.ready_count(record.id) == 1, "the node after the timer is queued"
    assert pump.next_at() == clock.now() + 7200.0  # no timer left: the fallback look


def test_the_timer_pump_fires_only_the_runs_it_is_given(
    store: SQLiteStore, clock: FakeClock, cache: RunCache
) -> None:
    mine = start_run(store, spec_of(echo(), deadline=60), {}, clock=clock)
    other = start_run(store, spec_of(echo(), deadline=60), {}, clock=clock)
    pump = TimerPump(store, cache, committer(store, cache), every=0.5)
    clock.advance(61)

    assert pump.fire(clock.now(), [mine.id]) == 1
    assert store.get_run(mine.id).status == "failed"
    assert store.get_run(other.id).status == "running"


# --- outbox -----------------------------------------------------------------------------------


def approval_notifying(target: str) -> WorkflowSpec:
    notifier = {"kind": "callable", "function": f"tests.unit.notify_targets:{target}",
                "on": ["approval_requested"]}  # fmt: skip
    return spec_of({"id": "ok", "kind": "approval", "title": "OK?"}, notify=[notifier])


def inline(job: Callable[[], None]) -> None:
    job()


def outbox(store: SQLiteStore, clock: FakeClock, every: float = 0.5) -> OutboxPump:
    return OutboxPump(store, OWNER, clock, every=every, lease_for=LEASE_FOR, spawn=inline)


def test_the_outbox_pump_delivers_a_notification_and_records_it(
    store: SQLiteStore, clock: FakeClock
) -> None:
    notify_targets.received.clear()
    record = start_run(store, approval_notifying("record"), {}, clock=clock)
    pump = outbox(store, clock)

    assert pump.due(clock.now())
    pump.run(clock.now())

    assert [n["event"] for n in notify_targets.received] == ["approval_requested"]
    (item,) = outbox_rows(store, record.id)
    assert (item.deliveries, item.delivered_at, item.error) == (1, clock.now(), None)
    assert pump.delivering == 0
    assert not pump.due(clock.now())
    pump.run(clock.now() + 1)  # delivered once: nothing more to send
    assert len(notify_targets.received) == 1


def test_the_outbox_pump_retries_a_failed_delivery_later_then_gives_up(
    store: SQLiteStore, clock: FakeClock
) -> None:
    record = start_run(store, approval_notifying("explode"), {}, clock=clock)
    pump = outbox(store, clock, every=0.0)

    pump.run(clock.now())
    (item,) = outbox_rows(store, record.id)
    assert item.deliveries == 1
    assert "pager is down" in (item.error or "")

    for delivery in range(2, MAX_DELIVERIES + 1):
        clock.advance(FIRST_REDELIVERY * 2.0 ** (delivery - 2) - 1)  # it doubles each time
        pump.run(clock.now())
        assert outbox_rows(store, record.id)[0].deliveries == delivery - 1, "too early"
        clock.advance(1)
        pump.run(clock.now())
        assert outbox_rows(store, record.id)[0].deliveries == delivery

    clock.advance(365 * 24 * 3600.0)  # given up: never taken again
    pump.run(clock.now())
    (item,) = outbox_rows(store, record.id)
    assert (item.deliveries, item.delivered_at) == (MAX_DELIVERIES, None)
    assert "pager is down" in (item.error or "")


def test_flushing_delivers_what_is_due_whatever_the_pace(
    store: SQLiteStore, clock: FakeClock
) -> None:
    notify_targets.received.clear()
    record = start_run(store, approval_notifying("record"), {}, clock=clock)
    pump = outbox(store, clock, every=3600.0)
    pump.run(clock.now())  # the first look
    start_run(store, approval_notifying("record"), {}, clock=clock)

    assert not pump.due(clock.now())
    pump.flush(5.0)

    assert len(notify_targets.received) == 2
    assert outbox_rows(store, record.id)[0].delivered_at is not None


# --- lease keeping ----------------------------------------------------------------------------


def expires(store: SQLiteStore, run_id: str) -> float:
    (lease,) = store.leases(run_id)
    return lease.expires_at


def test_leases_are_renewed_every_third_of_their_length_while_held(
    store: SQLiteStore, clock: FakeClock
) -> None:
    record = start_run(store, spec_of(echo()), {}, clock=clock)
    store.claim(OWNER, 1, clock.now(), LEASE_FOR)
    keeper = LeaseKeeper(store, OWNER, clock, lease_for=LEASE_FOR, reclaim_every=1e9)
    clock.advance(5)

    keeper.run(clock.now(), holding=True)  # the first turn renews
    taken = expires(store, record.id)
    assert taken == clock.now() + LEASE_FOR
    clock.advance(LEASE_FOR / 3 - 1)
    keeper.run(clock.now(), holding=True)
    assert expires(store, record.id) == taken, "renewed before a third had passed"
    clock.advance(1)
    keeper.run(clock.now(), holding=True)
    assert expires(store, record.id) == clock.now() + LEASE_FOR
    clock.advance(LEASE_FOR / 3)
    keeper.run(clock.now(), holding=False)
    assert expires(store, record.id) != clock.now() + LEASE_FOR, "renewed holding nothing"


def test_an_expired_lease_is_reclaimed_when_the_reclaim_is_due(
    store: SQLiteStore, clock: FakeClock
) -> None:
    record = start_run(store, spec_of(echo()), {}, clock=clock)
    store.claim(OTHER, 1, clock.now(), LEASE_FOR)
    keeper = LeaseKeeper(store, OWNER, clock, lease_for=LEASE_FOR, reclaim_every=2.0)

    assert keeper.run(clock.now(), holding=False) == []
    clock.advance(LEASE_FOR + 1)  # expired, and a reclaim is due
    (stored,) = keeper.run(clock.now(), holding=False)

    assert isinstance(stored.event, NodeReclaimed)
    assert (stored.event.owner, stored.event.reason) == (OTHER, "lease expired")
    assert store.leases(record.id) == []
    assert store.ready_count(record.id) == 1
    assert keeper.next_at(holding=False) == clock.now() + 2.0


def test_a_reclaim_waits_for_its_pace(store: SQLiteStore, clock: FakeClock) -> None:
    keeper = LeaseKeeper(store, OWNER, clock, lease_for=LEASE_FOR, reclaim_every=2.0)
    keeper.run(clock.now(), holding=False)
    record = start_run(store, spec_of(echo()), {}, clock=clock)
    store.claim(OTHER, 1, clock.now(), 0.5)  # expired by the next look

    assert keeper.run(clock.now() + 1, holding=False) == []
    assert len(store.leases(record.id)) == 1
    assert len(keeper.run(clock.now() + 2, holding=False)) == 1


def test_giving_back_puts_this_workers_leases_back_on_the_queue(
    store: SQLiteStore, clock: FakeClock
) -> None:
    record = start_run(store, spec_of(echo()), {}, clock=clock)
    store.claim(OWNER, 1, clock.now(), LEASE_FOR)
    seen: list[StoredEvent] = []
    keeper = LeaseKeeper(store, OWNER, clock, lease_for=LEASE_FOR, reclaim_every=2.0)

    keeper.give_back("worker stopped", 10.0, seen.extend)

    assert [(s.event.owner, s.event.reason) for s in seen] == [(OWNER, "worker stopped")]
    assert OWNER not in store.lease_owners()
    assert store.ready_count(record.id) == 1


# --- claiming ---------------------------------------------------------------------------------


class Counting:
    """A store whose ``claim`` calls are counted."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.claims = 0
        #: each claim's ``expected``
        self.expected: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        self.claims += 1
        self.expected.append(kwargs.get("expected", False))
        return self.store.claim(*args, **kwargs)


def test_claiming_looks_at_the_queue_only_when_work_may_be_waiting(
    store: SQLiteStore, clock: FakeClock
) -> None:
    counting = Counting(store)
    claims = Claiming(counting, OWNER, clock, lease_for=LEASE_FOR, queues=None, pause=0.05)
    record = start_run(store, spec_of(echo("a"), echo("b")), {}, clock=clock)

    (first,) = claims.claim(1)
    assert first.lease.owner == OWNER
    assert claims.next_at() == float("-inf"), "it took all it asked for: more may wait"
    (second,) = claims.claim(4)
    assert counting.claims == 2
    assert claims.next_at() == clock.monotonic() + 0.05, "drained: look again a pause later"

    start_run(store, spec_of(echo("c")), {}, clock=clock)  # queued by "another process"
    assert claims.claim(4) == []
    assert counting.claims == 2, "the queue is not asked before the pause is over"
    clock.advance(0.05)
    (third,) = claims.claim(4)
    assert counting.claims == 3
    assert {c.lease.run_id for c in (first, second)} == {record.id}
    assert third.lease.run_id != record.id
    assert claims.claim(0) == []
    assert counting.claims == 3, "no free slot: no look"


def test_claiming_skips_the_read_only_look_only_when_told_work_is_there(
    store: SQLiteStore, clock: FakeClock
) -> None:
    counting = Counting(store)
    claims = Claiming(counting, OWNER, clock, lease_for=LEASE_FOR, queues=None, pause=0.05)
    start_run(store, spec_of(echo("a"), echo("b")), {}, clock=clock)

    assert len(claims.claim(1)) == 1  # a first look: nobody said anything
    assert len(claims.claim(4)) == 1  # it took all it asked for: more may wait, not said
    assert counting.expected == [False, False]
    clock.advance(0.05)
    assert claims.claim(4) == []  # a pause passed: a look on its own
    claims.look_by(clock.monotonic())  # a wake-up: attempts were queued
    start_run(store, spec_of(echo("c")), {}, clock=clock)
    assert len(claims.claim(4)) == 1
    assert counting.expected == [False, False, False, True]
    clock.advance(0.05)
    assert claims.claim(4) == []
    claims.look_now()  # a commit left work unleased
    assert claims.claim(4) == []
    assert counting.expected == [False, False, False, True, False, True]


def test_claiming_stands_aside_while_attempts_given_back_are_up_for_others(
    store: SQLiteStore, clock: FakeClock
) -> None:
    claims = claiming(store, clock)
    start_run(store, spec_of(echo()), {}, clock=clock)
    claims.stand_aside(clock.monotonic() + 1.0, 2.0)

    assert len(claims.claim(1)) == 1, "before the attempts are back, it claims"
    later = start_run(store, spec_of(echo()), {}, clock=clock)
    clock.advance(1.0)  # they are back: others' turn
    claims.look_now()
    assert claims.claim(1) == []
    assert claims.next_at() == clock.monotonic() + 2.0
    clock.advance(2.0)
    (claimed,) = claims.claim(1)
    assert claimed.lease.run_id == later.id


# --- wake-ups ---------------------------------------------------------------------------------


def test_wake_ups_bring_the_right_look_forward(
    store: SQLiteStore, clock: FakeClock, cache: RunCache
) -> None:
    claims = claiming(store, clock, pause=3600.0)
    timers = TimerPump(store, cache, committer(store, cache), every=0.5, fallback=3600.0)
    mail = outbox(store, clock, every=3600.0)
    wakeups = Wakeups(clock, ("mine",), claims, timers, mail)
    claims.claim(1)
    timers.run(clock.now())
    mail.run(clock.now())
    nothing_due = (claims.next_at(), timers.next_at(), mail.due(clock.now()))

    wakeups.handle(WorkQueued("theirs", clock.now()))
    assert (claims.next_at(), timers.next_at(), mail.due(clock.now())) == nothing_due
    wakeups.handle(WorkQueued("mine", clock.now() + 5))
    assert claims.next_at() == clock.monotonic() + 5
    wakeups.handle(TimerSet(clock.now() + 7))
    assert timers.next_at() == clock.now() + 7
    wakeups.handle(OutboxFilled())
    assert mail.due(clock.now())


def test_a_lost_notification_makes_every_pump_look(
    store: SQLiteStore, clock: FakeClock, cache: RunCache
) -> None:
    claims = claiming(store, clock, pause=3600.0)
    timers = TimerPump(store, cache, committer(store, cache), every=3600.0)
    mail = outbox(store, clock, every=3600.0)
    claims.claim(1)
    timers.run(clock.now())
    mail.run(clock.now())

    Wakeups(clock, None, claims, timers, mail).handle(MaybeMissed())

    assert claims.next_at() == float("-inf")
    assert timers.due(clock.now())
    assert mail.due(clock.now())


# --- late results -----------------------------------------------------------------------------


def recorder(store: SQLiteStore, clock: FakeClock, cache: RunCache) -> Recorder:
    return Recorder(store, cache, clock, claiming(store, clock), RunWatch(store),
                    code_wait=0.0, aside_for=0.25, timer_due=lambda: None,
                    outbox_due=lambda: None)  # fmt: skip


def test_a_result_after_the_timeout_is_recorded_as_discarded(
    store: SQLiteStore, clock: FakeClock, cache: RunCache
) -> None:
    record = start_run(store, spec_of(echo()), {}, clock=clock)
    (claimed,) = store.claim(OWNER, 1, clock.now(), LEASE_FOR)
    timed_out = ErrorInfo(type="TimeoutError", message="over 1 s", retryable=False)
    kept: list[Done] = []
    recorder(store, clock, cache).record(
        [(claimed.lease, Outcome(error=timed_out))], 1, over=lambda lease: None, keep=kept.append
    )
    late = LateResults(cache, committer(store, cache), overdue=lambda: 0)

    late.put(claimed.lease, Outcome(output=42))
    assert late.due()
    late.run(clock.now())

    (discarded,) = events_of(store, record.id, LateResultDiscarded)
    assert (discarded.node, discarded.attempt, discarded.outcome) == ("a", 1, "succeeded")
    assert store.get_run(record.id).status == "failed", "the timeout still decides"
    assert not late.due()
    assert kept == []


def test_at_stop_late_results_are_waited_for_while_threads_are_overdue(
    store: SQLiteStore, clock: FakeClock, cache: RunCache
) -> None:
    # one thread is overdue until its result is in
    late = LateResults(cache, committer(store, cache), overdue=lambda: 0 if late.due() else 1)
    paced = clock.monotonic()
    late.wait(clock, 0.0)  # no grace: no wait
    assert clock.monotonic() == paced
    assert not late.due()

    late.put(Lease("gone", "a", None, 1, OWNER, 0.0), Outcome(output=1))
    late.wait(clock, 10.0)
    assert late.due(), "the result that came is held, to be recorded"
    assert clock.monotonic() == paced
    late.run(clock.now())  # its run is gone: nothing to record
    assert not late.due()


# --- outcomes and recording -------------------------------------------------------------------


def test_outcomes_hand_wake_ups_on_and_keep_what_is_left_to_record(clock: FakeClock) -> None:
    woken: list[Wakeup] = []
    outcomes = Outcomes(clock, gather=0.002, running=lambda: 0, woken=woken.append)
    lease = Lease("r", "a", None, 1, OWNER, 0.0)

    outcomes.wake(OutboxFilled())
    outcomes.put(lease, Outcome(output=1))
    assert outcomes.collect(0.0) == [(lease, Outcome(output=1))]
    assert woken == [OutboxFilled()]

    paced = clock.monotonic()
    outcomes.wait(0.5)  # nothing came: the fake clock moves on
    assert clock.monotonic() == paced + 0.5
    outcomes.put(lease, Outcome(output=2))
    outcomes.wait(0.5)
    assert outcomes.retry == [(lease, Outcome(output=2))]
    assert outcomes.collect(0.5) == [(lease, Outcome(output=2))]


def test_recording_leases_what_the_outcome_makes_ready_in_the_same_commit(
    store: SQLiteStore, clock: FakeClock, cache: RunCache
) -> None:
    record = start_run(store, spec_of(echo("a"), echo("b", after=["a"])), {}, clock=clock)
    (claimed,) = store.claim(OWNER, 1, clock.now(), LEASE_FOR)
    over: list[Lease] = []

    recorded, leased = recorder(store, clock, cache).record(
        [(claimed.lease, Outcome(output=1))], 1, over=over.append, keep=over.append
    )

    assert isinstance(recorded[0].event, NodeSucceeded)
    assert over == [claimed.lease]
    (next_one,) = leased
    assert (next_one.lease.node, next_one.lease.owner) == ("b", OWNER)
    assert isinstance(next_one.started.event, NodeStarted)
    assert [lease.node for lease in store.leases(record.id)] == ["b"]


def test_an_outcome_whose_run_moved_is_kept_to_record_again(
    store: SQLiteStore, clock: FakeClock, cache: RunCache
) -> None:
    record = start_run(store, spec_of(echo("a"), echo("b")), {}, clock=clock)
    first, second = store.claim(OWNER, 2, clock.now(), LEASE_FOR)
    rec = recorder(store, clock, cache)
    cache.state(record.id)  # decided from this state...
    other = RunCache(store)  # ...while another process records the other outcome
    recorder(store, clock, other).record(
        [(second.lease, Outcome(output=2))], 0, over=lambda lease: None, keep=lambda d: None
    )
    kept: list[Done] = []
    over: list[Lease] = []

    recorded, _ = rec.record([(first.lease, Outcome(output=1))], 0, over=over.append,
                             keep=kept.append)  # fmt: skip

    assert (recorded, over, kept) == ([], [], [(first.lease, Outcome(output=1))])
    recorded, _ = rec.record(kept, 0, over=over.append, keep=kept.append)
    assert over == [first.lease]
    assert store.get_run(record.id).status == "succeeded"
    assert not events_of(store, record.id, RunFailed)
