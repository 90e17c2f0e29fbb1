"""Alerts evaluated over a real store, on every backend, with a fake clock: a rule fires
once per incident and resolves once, whoever evaluates and however often they restart;
one process evaluates at a time (the store's lease); a notification decided is never
lost by a crash before it was sent.

Notifications go to a real HTTP server on this host (``RecordingServer``): what it
received is what a receiver would have. Runs are made with hand-built transitions that
end them at known times, so every value the rules read is known."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from keel.runtime.alerts.config import parse_rules
from keel.runtime.alerts.pump import LEASE_FOR, AlertPump
from keel.runtime.alerts.rules import AlertRule
from keel.runtime.clock import FakeClock
from keel.store import Store, Transition
from keel.store.writes import SetStatus
from tests.contract.conftest import T0, Driver, make_spec
from tests.unit.test_notify import RecordingServer, serving

RULE = {"name": "claims-failing", "kind": "failure_rate", "workflow": "claim",
        "window": "10m", "above": 0.5, "for": "1m", "min_runs": 4,
        "severity": "page"}  # fmt: skip


@pytest.fixture
def receiver() -> Iterator[RecordingServer]:
    with serving() as server:
        yield server


def rules(receiver: RecordingServer, **changes: Any) -> tuple[AlertRule, ...]:
    notify = [{"kind": "webhook", "url": receiver.url, "max_attempts": 1}]
    return parse_rules("test", [{**RULE, **changes, "notify": notify}], {})


def end_runs(store: Store, workflow: str, statuses: list[str], at: float) -> None:
    """Runs of ``workflow`` started a minute before ``at`` and ended at ``at``."""
    for status in statuses:
        run_id = f"{workflow}-{len(store.list_runs(limit=1000))}"
        driver = Driver(store, make_spec(workflow), run_id)
        driver.now = at - 60
        driver.start()
        last = store.get_run(run_id).last_seq
        (done,) = store.commit([Transition(run_id, last, at, [], [SetStatus(status)])])
        assert done.error is None


def received(receiver: RecordingServer) -> list[tuple[str, dict[str, Any]]]:
    return [(r.headers["idempotency-key"], json.loads(r.body)) for r in receiver.requests]


def test_a_failure_rate_fires_once_and_resolves_once_across_restarts(
    store: Store, receiver: RecordingServer
) -> None:
    clock = FakeClock(T0)
    first = AlertPump(store, rules(receiver), owner="evaluator-1", clock=clock)
    end_runs(store, "claim", ["succeeded"] * 4, T0 - 30)
    end_runs(store, "other", ["failed"] * 5, T0 - 30)  # another workflow's failures
    assert first.run(clock.now())
    assert store.alert_states()[0].state == "ok"
    assert store.alert_states()[0].value == 0.0

    end_runs(store, "claim", ["failed"] * 5, T0)  # 5 of 9 failed: above 0.5
    clock.advance(10)
    assert first.run(clock.now())
    (pending,) = store.alert_states()
    assert (pending.state, pending.since, pending.value) == ("pending", T0 + 10, 5 / 9)
    assert receiver.requests == []  # not held for its minute yet

    clock.advance(60)
    first.run(clock.now())
    (firing,) = store.alert_states()
    assert (firing.state, firing.since) == ("firing", T0 + 70)
    ((key, told),) = received(receiver)
    assert told["event"] == "alert_firing"
    assert (told["alert"], told["incident"], told["value"]) == (
        "claims-failing", firing.incident, 5 / 9)  # fmt: skip
    assert (told["above"], told["severity"]) == (0.5, "page")
    assert told["condition"] == "failure rate of claim over 10m above 50%"

    for _ in range(3):  # stays high: no repeat
        clock.advance(10)
        first.run(clock.now())
    assert len(receiver.requests) == 1

    # a restart: the first evaluator is gone without a word; once its lease expired,
    # a new one takes over, reads the state back, and fires nothing again
    second = AlertPump(store, rules(receiver), owner="evaluator-2", clock=clock)
    assert not second.run(clock.now())  # the lease is still the first's
    clock.advance(LEASE_FOR + 1)
    assert second.run(clock.now())
    assert store.alert_states()[0].state == "firing"
    assert store.alert_states()[0].incident == firing.incident
    assert len(receiver.requests) == 1

    end_runs(store, "claim", ["succeeded"] * 6, clock.now())  # 5 of 15: below
    clock.advance(10)
    second.run(clock.now())
    (resolved,) = store.alert_states()
    assert (resolved.state, resolved.since, resolved.incident) == ("ok", clock.now(), None)
    (_, (resolve_key, told)) = received(receiver)
    assert told["event"] == "alert_resolved"
    assert told["incident"] == firing.incident
    assert told["value"] == 5 / 15
    assert told["fired_at"] == told_time(T0 + 70)
    assert resolve_key != key  # a firing and its resolve: two messages, each deduplicated

    # another restart, after a clean stop this time: nothing more to say
    second.release()
    third = AlertPump(store, rules(receiver), owner="evaluator-3", clock=clock)
    for _ in range(3):
        clock.advance(10)
        assert third.run(clock.now())
    assert len(receiver.requests) == 2
    assert store.alert_states()[0].state == "ok"


def told_time(at: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at, UTC).isoformat()


def test_a_notification_decided_before_a_crash_is_delivered_by_the_next_evaluator(
    store: Store, receiver: RecordingServer
) -> None:
    clock = FakeClock(T0)
    end_runs(store, "claim", ["failed"] * 4, T0)
    crashed = AlertPump(store, rules(receiver, **{"for": 0}), owner="evaluator-1", clock=clock)
    assert store.hold_alert_lease("evaluator-1", clock.now(), LEASE_FOR)
    assert crashed.evaluate(clock.now())  # recorded firing, then died before delivering
    assert store.alert_states()[0].state == "firing"
    assert receiver.requests == []

    clock.advance(LEASE_FOR + 1)
    after = AlertPump(store, rules(receiver, **{"for": 0}), owner="evaluator-2", clock=clock)
    assert after.run(clock.now())
    ((_, told),) = received(receiver)
    assert (told["event"], told["incident"]) == ("alert_firing", store.alert_states()[0].incident)
    clock.advance(10)
    after.run(clock.now())
    assert len(receiver.requests) == 1


def test_a_failed_delivery_is_tried_again_later_with_the_same_key(
    store: Store, receiver: RecordingServer
) -> None:
    clock = FakeClock(T0)
    end_runs(store, "claim", ["failed"] * 4, T0)
    receiver.answer(503, 200)
    pump = AlertPump(store, rules(receiver, **{"for": 0}), owner="evaluator-1", clock=clock)
    pump.run(clock.now())
    assert len(receiver.requests) == 1  # refused: kept, with a growing wait
    clock.advance(10)
    pump.run(clock.now())
    assert len(receiver.requests) == 1  # not due again yet
    clock.advance(30)
    pump.run(clock.now())
    first, again = received(receiver)
    assert first == again
    clock.advance(300)  # delivered: never again
    pump.run(clock.now())
    assert len(receiver.requests) == 2


def test_one_evaluator_at_a_time_and_another_takes_over_when_it_stops(
    store: Store, receiver: RecordingServer
) -> None:
    clock = FakeClock(T0)
    end_runs(store, "claim", ["failed"] * 4, T0)
    one = AlertPump(store, rules(receiver, **{"for": 0}), owner="evaluator-1", clock=clock)
    two = AlertPump(store, rules(receiver, **{"for": 0}), owner="evaluator-2", clock=clock)
    assert one.run(clock.now())
    assert not two.run(clock.now())
    for _ in range(5):  # the holder renews its lease at each turn: it keeps evaluating
        clock.advance(LEASE_FOR / 2)
        assert one.run(clock.now())
        assert not two.run(clock.now())
    assert len(receiver.requests) == 1
    assert store.alert_states()[0].evaluated_at == clock.now()

    one.release()  # a clean stop: the other takes over at its next look
    clock.advance(10)
    assert two.run(clock.now())
    assert not one.run(clock.now())
    assert len(receiver.requests) == 1


def test_a_write_after_the_lease_was_lost_is_refused(store: Store) -> None:
    clock = FakeClock(T0)
    end_runs(store, "claim", ["failed"] * 4, T0)
    rule = parse_rules("test", [{**RULE, "for": 0}], {})
    slow = AlertPump(store, rule, owner="evaluator-1", clock=clock)
    assert store.hold_alert_lease("evaluator-1", clock.now(), LEASE_FOR)
    clock.advance(LEASE_FOR + 1)  # it stalled past its lease...
    assert store.hold_alert_lease("evaluator-2", clock.now(), LEASE_FOR)  # ...and lost it
    assert not slow.evaluate(clock.now())
    assert store.alert_states() == []
    assert store.take_alert_notices(clock.now(), 10) == []


def test_a_rule_no_longer_configured_is_forgotten(store: Store, receiver: RecordingServer) -> None:
    clock = FakeClock(T0)
    end_runs(store, "claim", ["failed"] * 4, T0)
    both = rules(receiver) + parse_rules("test", [{**RULE, "name": "gone"}], {})
    AlertPump(store, both, owner="evaluator-1", clock=clock).run(clock.now())
    assert [state.name for state in store.alert_states()] == ["claims-failing", "gone"]
    clock.advance(10)
    AlertPump(store, rules(receiver), owner="evaluator-1", clock=clock).run(clock.now())
    assert [state.name for state in store.alert_states()] == ["claims-failing"]
