"""The store contract for alerts, on every backend: the values rules compare, read from
a store whose every run, attempt and wait is known (``Readings``, and the store reads
under it); the lease; the states and notifications written together; the gauge.

Transitions are built by hand, so each run ends (or waits, or is late) at a known time."""

from __future__ import annotations

from typing import Any

import pytest

from keel.runtime.alerts.config import parse_rules
from keel.runtime.alerts.readings import Readings
from keel.store import Store, Transition, Wait
from keel.store.alerts import AlertNotice, AlertState, EndedRuns
from keel.store.writes import OpenWait, SetLate, SetStatus, Write
from tests.contract.conftest import T0, Driver, make_spec, roots_spec

H = 3600.0


def write(store: Store, run_id: str, at: float, *writes: Write) -> None:
    last = store.get_run(run_id).last_seq
    (done,) = store.commit([Transition(run_id, last, at, [], list(writes))])
    assert done.error is None, done.error


def run(store: Store, run_id: str, workflow: str, created: float) -> Driver:
    driver = Driver(store, make_spec(workflow), run_id)
    driver.now = created
    driver.start()
    return driver


def ended(store: Store, run_id: str, workflow: str, created: float, took: float,
          status: str) -> None:  # fmt: skip
    run(store, run_id, workflow, created)
    write(store, run_id, created + took, SetStatus(status))


def value(store: Store, now: float, **rule: Any) -> float | None:
    (parsed,) = parse_rules("test", [{"name": "r", "above": 0, **rule}], {})
    return Readings(store, now).value(parsed)


# --- the runs that ended in a window ----------------------------------------------------------


def test_ended_runs_counts_the_runs_that_succeeded_or_failed_since_a_time(store: Store) -> None:
    ended(store, "old", "claim", T0 - 2 * H, 60, "failed")  # ended before the window
    ended(store, "ok-1", "claim", T0, 10, "succeeded")
    ended(store, "ok-2", "claim", T0, 20, "succeeded")
    ended(store, "bad-1", "claim", T0, 30, "failed")
    ended(store, "gone", "claim", T0, 40, "cancelled")  # tells nothing of its health
    ended(store, "bad-2", "other", T0, 50, "failed")
    run(store, "going", "claim", T0)  # not ended

    since = T0 - H
    assert store.ended_runs(since) == EndedRuns(4, 2)
    assert store.ended_runs(since, workflow="claim") == EndedRuns(3, 1)
    assert store.ended_runs(since, workflow="none") == EndedRuns(0, 0)
    assert store.ended_runs(T0 - 3 * H, workflow="claim") == EndedRuns(4, 2)
    assert store.ended_runs(T0 + 25, workflow="claim") == EndedRuns(1, 1)  # ended at T0 + 30


def test_ended_runs_gives_the_duration_at_a_quantile_by_the_nearest_rank(store: Store) -> None:
    for n in range(1, 21):  # took 1 s ... 20 s, created in a shuffled order
        ended(store, f"run-{n:02d}", "claim", T0 + (n * 7) % 20, float(n), "succeeded")
    ended(store, "other", "other", T0, 500.0, "failed")

    assert store.ended_runs(T0 - H, workflow="claim", quantile=0.95) == EndedRuns(20, 0, 19.0)
    assert store.ended_runs(T0 - H, workflow="claim", quantile=0.5).duration == 10.0
    assert store.ended_runs(T0 - H, workflow="claim", quantile=1.0).duration == 20.0
    assert store.ended_runs(T0 - H, quantile=1.0) == EndedRuns(21, 1, 500.0)
    assert store.ended_runs(T0 - H, workflow="none", quantile=0.95) == EndedRuns(0, 0, None)


class Named(dict[str, str]):
    """A store's named queries that keep the names of those taken (in order)."""

    def __init__(self, queries: dict[str, str], taken: list[str]) -> None:
        super().__init__(queries)
        self.taken = taken

    def __getitem__(self, name: str) -> str:
        self.taken.append(name)
        return super().__getitem__(name)


def test_ended_runs_gives_several_quantiles_from_one_sort(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(1, 21):  # took 1 s ... 20 s, created in a shuffled order
        ended(store, f"run-{n:02d}", "claim", T0 + (n * 7) % 20, float(n), "succeeded")
    ended(store, "bad", "claim", T0, 30.0, "failed")
    queries: list[str] = []
    monkeypatch.setattr(store, "q", Named(store.q, queries))  # type: ignore[attr-defined]

    found = store.ended_runs(T0 - H, workflow="claim", quantiles=(0.5, 0.95, 1.0))

    assert found == EndedRuns(21, 1, None, (11.0, 20.0, 30.0))
    assert queries == ["ended_runs", "ended_run_durations"]  # counted, then one sort
    both = store.ended_runs(T0 - H, workflow="claim", quantile=0.95, quantiles=(0.5,))
    assert (both.duration, both.durations) == (20.0, (11.0,))
    assert store.ended_runs(T0 - H, workflow="none", quantiles=(0.5, 0.95)) == EndedRuns(
        0, 0, None, (None, None))  # fmt: skip


def test_a_run_reopened_by_a_retry_is_no_longer_ended(store: Store) -> None:
    ended(store, "bad", "claim", T0, 10, "failed")
    assert store.ended_runs(T0 - H) == EndedRuns(1, 1)
    write(store, "bad", T0 + 20, SetStatus("running"))  # what a retry by hand writes
    assert store.ended_runs(T0 - H) == EndedRuns(0, 0)
    write(store, "bad", T0 + 90, SetStatus("succeeded"))
    assert store.ended_runs(T0 + 60, quantile=0.95) == EndedRuns(1, 0, 90.0)


def test_failure_rate_and_p95_need_their_minimum_of_runs(store: Store) -> None:
    ended(store, "ok-1", "claim", T0, 10, "succeeded")
    ended(store, "bad-1", "claim", T0, 30, "failed")
    ended(store, "bad-2", "claim", T0, 20, "failed")
    now = T0 + 60
    rate = {"kind": "failure_rate", "workflow": "claim", "window": "10m"}
    assert value(store, now, **rate, min_runs=3) == 2 / 3
    assert value(store, now, **rate, min_runs=4) is None  # 2 of 3 is not enough to say
    assert value(store, now + H, **rate, min_runs=1) is None  # none in the window
    p95 = {"kind": "p95_duration", "workflow": "claim", "window": "10m"}
    assert value(store, now, **p95) == 30.0
    assert value(store, now, **p95, min_runs=4) is None


# --- queue age, overdue approvals, late runs -----------------------------------------------


def test_queue_age_is_the_wait_of_the_oldest_ready_attempt_not_held(store: Store) -> None:
    now = T0 + 100
    assert value(store, now, kind="queue_age") == 0.0  # nothing waits
    older = Driver(store, roots_spec("a", "b"), "older")
    older.start()  # a and b ready at T0
    newer = Driver(store, make_spec("t"), "newer")
    newer.now = T0 + 40
    newer.start()  # a ready at T0 + 40
    assert value(store, now, kind="queue_age") == 100.0
    assert value(store, now, kind="queue_age", queue="default") == 100.0
    assert value(store, now, kind="queue_age", queue="other") == 0.0
    store.claim("w1", 2, now, 30.0, run_id="older")  # held attempts wait no more
    assert value(store, now, kind="queue_age") == 60.0


def test_overdue_approvals_are_the_approvals_waiting_past_their_time(store: Store) -> None:
    for run_id in ("r1", "r2", "r3"):
        run(store, run_id, "review", T0)
    write(store, "r1", T0 + 1, OpenWait(Wait("r1", "a", "approval", T0 + 1, T0 + 60, {})),
          OpenWait(Wait("r1", "b", "timer", T0 + 1, T0 + 10, {})))  # fmt: skip
    write(store, "r2", T0 + 1, OpenWait(Wait("r2", "a", "approval", T0 + 1, T0 + 300, {})))
    write(store, "r3", T0 + 1, OpenWait(Wait("r3", "a", "approval", T0 + 1, None, {})))

    assert store.overdue_approvals(T0 + 30) == 0
    assert value(store, T0 + 60, kind="overdue_approvals") == 1.0
    assert store.overdue_approvals(T0 + 301) == 2  # the timer and the one without a time never
    write(store, "r1", T0 + 400, SetStatus("failed"))  # an ended run waits no more
    assert store.overdue_approvals(T0 + 401) == 1


def test_late_runs_are_the_late_runs_not_ended(store: Store) -> None:
    for run_id, workflow in (("r1", "claim"), ("r2", "claim"), ("r3", "other"), ("r4", "claim")):
        run(store, run_id, workflow, T0)
    assert value(store, T0, kind="late_runs") == 0.0
    for run_id in ("r1", "r2", "r3"):
        write(store, run_id, T0 + 600, SetLate(True))
    write(store, "r2", T0 + 700, SetStatus("succeeded"))  # late, but ended: keeps its flag

    assert store.get_run("r2").late
    assert value(store, T0 + 800, kind="late_runs") == 2.0
    assert value(store, T0 + 800, kind="late_runs", workflow="claim") == 1.0
    assert value(store, T0 + 800, kind="late_runs", workflow="none") == 0.0


# --- the lease, the states, the notifications ---------------------------------------------


def test_the_lease_is_held_by_one_owner_until_it_expires_or_is_given_back(store: Store) -> None:
    assert store.hold_alert_lease("a", T0, 30)
    assert not store.hold_alert_lease("b", T0 + 10, 30)
    assert store.hold_alert_lease("a", T0 + 20, 30)  # renewed: until T0 + 50
    assert not store.hold_alert_lease("b", T0 + 45, 30)
    assert store.hold_alert_lease("b", T0 + 51, 30)  # expired: taken
    assert not store.hold_alert_lease("a", T0 + 52, 30)
    store.release_alert_lease("a")  # not its: nothing happens
    assert not store.hold_alert_lease("a", T0 + 53, 30)
    store.release_alert_lease("b")
    assert store.hold_alert_lease("a", T0 + 54, 30)


def state(name: str, status: str = "firing", **changes: Any) -> AlertState:
    fields: dict[str, Any] = {"name": name, "rule": {"kind": "late_runs", "unit": "count"},
                              "state": status, "since": T0, "incident": "i-1", "value": 2.0,
                              "evaluated_at": T0, **changes}  # fmt: skip
    return AlertState(**fields)


def test_states_and_notices_are_written_together_only_by_the_lease_holder(store: Store) -> None:
    notice = AlertNotice("late", {"kind": "webhook", "url": "http://x/"}, {"event": "e", "n": 1})
    assert not store.record_alerts("a", T0, [state("late")], [notice])  # no lease
    assert store.alert_states() == []
    assert store.take_alert_notices(T0, 10) == []

    store.hold_alert_lease("a", T0, 30)
    assert store.record_alerts("a", T0, [state("late"), state("slow", "ok", incident=None,
                                                            value=None)], [notice])  # fmt: skip
    assert store.alert_states() == [state("late"), state("slow", "ok", incident=None, value=None)]
    assert store.gauges(T0, T0).alerts_firing == {"late": 1, "slow": 0}
    assert not store.record_alerts("b", T0, [state("late", "ok")], [notice])

    assert store.record_alerts("a", T0 + 5, [state("late", "ok", evaluated_at=T0 + 5)], [],
                               forget=["slow"])  # fmt: skip
    assert store.alert_states() == [state("late", "ok", evaluated_at=T0 + 5)]
    assert store.gauges(T0, T0).alerts_firing == {"late": 0}


def test_notices_are_taken_when_due_until_delivered_or_given_up(store: Store) -> None:
    store.hold_alert_lease("a", T0, 30)
    notices = [AlertNotice("late", {"kind": "webhook", "url": "http://x/"}, {"n": n})
               for n in range(3)]  # fmt: skip
    store.record_alerts("a", T0, [state("late")], notices)

    first, second = store.take_alert_notices(T0, 2)
    assert [first.payload, second.payload] == [{"n": 0}, {"n": 1}]
    assert (first.run_id, first.notifier, first.deliveries) == ("", notices[0].notifier, 1)
    store.finish_alert_notice(first.id, T0 + 1)
    store.finish_alert_notice(second.id, T0 + 1, error="HTTP 503", retry_at=T0 + 30)
    (third,) = store.take_alert_notices(T0 + 1, 10)
    store.finish_alert_notice(third.id, T0 + 1, error="refused", retry_at=None)  # given up

    assert store.take_alert_notices(T0 + 29, 10) == []
    (again,) = store.take_alert_notices(T0 + 30, 10)
    assert (again.id, again.payload, again.deliveries) == (second.id, {"n": 1}, 2)
    store.finish_alert_notice(again.id, T0 + 31)
    assert store.take_alert_notices(T0 + 10_000, 10) == []


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_a_run_that_ends_is_in_the_window_of_its_end(store: Store, status: str) -> None:
    ended(store, "r", "claim", T0, 42, status)
    counted = 0 if status == "cancelled" else 1
    assert store.ended_runs(T0 + 42, quantile=0.95) == EndedRuns(
        counted, int(status == "failed"), 42.0 if counted else None)  # fmt: skip
    assert store.ended_runs(T0 + 42.5) == EndedRuns(0, 0)
