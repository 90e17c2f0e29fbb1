"""Schedule slots across DST, in the schedule's own zone: each slot fires once, none
twice, none invented; catch-up, jitter and overlap policies; the pump on a store."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from keel.runtime.runs import RunCache
from keel.runtime.triggers.schedule_pump import SchedulePump
from keel.runtime.triggers.schedules import (
    GRACE,
    due,
    jitter_of,
    next_fire_at,
    schedule_names,
    slot_key,
    slot_of_key,
    slots_between,
)
from keel.spec import parse_spec
from keel.spec.triggers import ScheduleTrigger
from keel.store.sqlite import SQLiteStore


def at(zone: str, *parts: int) -> float:
    return datetime(*parts, tzinfo=ZoneInfo(zone)).timestamp()  # type: ignore[misc]


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


def simulate(trigger: ScheduleTrigger, start: float, end: float, steps: list[float]) -> list[float]:
    """A pump looking at the times ``start + steps...``: the slots it fires, in order."""
    fired: list[float] = []
    last: float | None = start  # as if the slot at start had just been fired
    now = start
    for step in steps:
        now = min(end, now + step)
        for slot in due(trigger, last, now):
            fired.append(slot)
            last = slot
    return fired


DAYS = [  # zone, a DST day (local midnight to midnight), hours that day
    ("Europe/Berlin", (2026, 3, 29), (2026, 3, 30), 23),
    ("Europe/Berlin", (2026, 10, 25), (2026, 10, 26), 25),
    ("America/New_York", (2026, 3, 8), (2026, 3, 9), 23),
    ("America/New_York", (2026, 11, 1), (2026, 11, 2), 25),
]


@pytest.mark.parametrize(("zone", "day", "after", "hours"), DAYS)
@pytest.mark.parametrize("policy", ["skip", "latest", "all"])
def test_hourly_slots_across_a_dst_change_fire_once_each(
    zone: str, day: tuple[int, int, int], after: tuple[int, int, int], hours: int, policy: str
) -> None:
    trigger = ScheduleTrigger(cron="0 * * * *", timezone=zone, catch_up=policy)  # type: ignore[arg-type]
    start, end = at(zone, *day) - 1, at(zone, *after) - 1
    rng = random.Random(7)
    steps = [rng.uniform(1, GRACE - 1) for _ in range(int((end - start) // 6))]
    fired = simulate(trigger, start, end, steps)
    assert len(fired) == hours  # 23 on spring-forward day, 25 on fall-back day
    assert fired == sorted(set(fired)) == list(slots_between(trigger, start, end))
    assert all(b - a == 3600 for a, b in itertools.pairwise(fired))  # real hours


@pytest.mark.parametrize(("zone", "day", "after", "hours"), DAYS)
def test_slots_missed_in_long_gaps_are_caught_up_once(
    zone: str, day: tuple[int, int, int], after: tuple[int, int, int], hours: int
) -> None:
    trigger = ScheduleTrigger(cron="*/20 * * * *", timezone=zone, catch_up="all")
    start, end = at(zone, *day) - 1, at(zone, *after) - 1
    rng = random.Random(3)
    steps = [rng.uniform(1, 3 * 3600) for _ in range(200)]
    fired = simulate(trigger, start, end, steps)
    assert len(fired) == 3 * hours
    assert fired == sorted(set(fired)) == list(slots_between(trigger, start, end))


def test_a_slot_in_the_hour_spring_forward_skips_is_cronsims() -> None:
    """02:30 does not exist on these days: cronsim fires at 03:00 local, once."""
    berlin = ScheduleTrigger(cron="30 2 * * *", timezone="Europe/Berlin")
    slots = list(slots_between(berlin, utc(2026, 3, 27), utc(2026, 3, 31)))
    assert [slot_key(s) for s in slots] == ["2026-03-27T01:30:00Z", "2026-03-28T01:30:00Z",
        "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]  # fmt: skip
    york = ScheduleTrigger(cron="30 2 * * *", timezone="America/New_York")
    slots = list(slots_between(york, utc(2026, 3, 7, 12), utc(2026, 3, 9, 12)))
    assert [slot_key(s) for s in slots] == ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]


def test_a_repeated_hour_at_fall_back_is_cronsims_and_fires_once_per_slot() -> None:
    """02:30 happens twice in Berlin on 2026-10-25: cronsim fires the first (CEST)."""
    trigger = ScheduleTrigger(cron="30 2 * * *", timezone="Europe/Berlin", catch_up="all")
    start, end = utc(2026, 10, 24, 18), utc(2026, 10, 25, 18)
    expected = list(slots_between(trigger, start, end))
    assert [slot_key(s) for s in expected] == ["2026-10-25T00:30:00Z"]
    assert simulate(trigger, start, end, [5.0] * 17_500) == expected


def test_catch_up_policies_after_an_outage() -> None:
    base = utc(2026, 6, 1, 10)
    now = base + 5 * 3600 + 60  # the slots of 11:00 to 15:00 were missed
    kinds = {p: ScheduleTrigger(cron="0 * * * *", catch_up=p, catch_up_limit=3)  # type: ignore[arg-type]
             for p in ("skip", "latest", "all")}  # fmt: skip
    assert due(kinds["skip"], base, now) == []
    assert due(kinds["latest"], base, now) == [base + 5 * 3600]
    assert due(kinds["all"], base, now) == [base + h * 3600 for h in (3, 4, 5)]
    # late by less than the grace is not missed; a schedule never fired missed nothing
    assert due(kinds["skip"], base, base + 3600 + 2) == [base + 3600]
    assert due(kinds["all"], None, now) == []
    assert due(kinds["all"], None, base + 1) == [base]


def test_jitter_delays_the_firing_not_the_key_and_is_the_same_everywhere() -> None:
    trigger = ScheduleTrigger(cron="0 * * * *", jitter=600.0)
    slot = utc(2026, 6, 1, 11)
    delay = jitter_of("s", trigger, slot)
    assert 0 <= delay < 600
    assert delay == jitter_of("s", trigger, slot)
    assert {round(jitter_of(str(n), trigger, slot)) for n in range(20)} != {round(delay)}
    assert slot not in due(trigger, slot - 3600, slot + delay - 0.5, "s")
    assert due(trigger, slot - 3600, slot + delay, "s") == [slot]
    assert next_fire_at(trigger, slot + delay - 1, "s") == slot + delay
    assert slot_of_key(slot_key(slot)) == slot


def test_schedule_names_default_to_the_workflow_then_numbered() -> None:
    spec = parse_spec({"name": "wf", "nodes": [{"id": "a", "task": "m:f"}], "triggers": [
        {"kind": "schedule", "cron": "0 * * * *"}, {"kind": "event", "event": "e"},
        {"kind": "schedule", "cron": "5 * * * *", "name": "five"},
        {"kind": "schedule", "cron": "9 * * * *"}]})  # fmt: skip
    assert schedule_names(spec) == {0: "wf", 2: "five", 3: "wf#3"}


def _deployed(tmp_path: Path, **schedule: object) -> tuple[SQLiteStore, SchedulePump]:
    store = SQLiteStore(tmp_path / "keel.db")
    trigger = {"kind": "schedule", "cron": "0 * * * *", **schedule}
    spec = parse_spec({"name": "wf", "nodes": [{"id": "a", "task": "m:f"}], "triggers": [trigger]})
    store.deploy([(spec, None)], 1.0)
    return store, SchedulePump(store, RunCache(store))


def test_the_pump_fires_each_slot_once_and_advances(tmp_path: Path) -> None:
    store, pump = _deployed(tmp_path, catch_up="all")
    other = SchedulePump(store, RunCache(store))
    base = utc(2026, 6, 1, 10)
    assert pump.run(base + 1) == 1
    assert other.run(base + 2) == 0  # the same slot, from another worker
    assert pump.next_at() == base + 1 + pump.every  # looks again soon (a deploy, a pause)
    assert pump.run(base + 3 * 3600 + 5) == 3
    runs = store.list_runs(started_by="schedule:wf", limit=10)
    assert len(runs) == 4
    (state,) = store.schedules()
    assert state.last_slot == base + 3 * 3600
    store.advance_schedule("wf", "wf", base)  # only forward
    assert store.schedules()[0].last_slot == base + 3 * 3600
    store.close()


def test_a_paused_schedule_fires_nothing(tmp_path: Path) -> None:
    store, pump = _deployed(tmp_path)
    base = utc(2026, 6, 1, 10)
    store.pause_schedule("wf", "wf", True, base, "me")
    assert pump.run(base + 1) == 0
    store.pause_schedule("wf", "wf", False, base)
    pump.look_now()
    assert pump.run(base + 2) == 1
    store.close()


@pytest.mark.parametrize(("overlap", "runs", "live"), [
    ("allow", 2, 2), ("skip", 1, 1), ("queue", 1, 1), ("cancel_previous", 2, 1)])  # fmt: skip
def test_overlap_with_a_run_still_going(tmp_path: Path, overlap: str, runs: int, live: int) -> None:
    store, pump = _deployed(tmp_path, overlap=overlap)
    base = utc(2026, 6, 1, 10)
    assert pump.run(base + 1) == 1  # no worker: the run stays pending
    pump.look_now()
    pump.run(base + 3600 + 1)
    found = store.list_runs(started_by="schedule:wf", limit=10)
    assert len(found) == runs
    assert sum(r.status != "cancelled" for r in found) == live
    last = store.schedules()[0].last_slot
    assert last == (base if overlap == "queue" else base + 3600)
    store.close()
