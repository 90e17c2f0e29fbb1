"""Two ``SchedulePump``s on one store, driven by a fake clock through the DST changes of
Europe/Berlin and America/New_York with jitter on: every slot of the day starts exactly
one run, none is invented, and each starts after its jitter (and within the grace of it),
as the store's runs say."""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from keel.runtime.clock import FakeClock
from keel.runtime.runs import RunCache
from keel.runtime.triggers.schedule_pump import SchedulePump
from keel.runtime.triggers.schedules import GRACE, jitter_of, slot_of_key, slots_between
from keel.spec import parse_spec
from keel.spec.triggers import ScheduleTrigger
from keel.store.sqlite import SQLiteStore

DAYS = [  # zone, a DST day (local midnight to midnight), hours that day
    ("Europe/Berlin", (2026, 3, 29), (2026, 3, 30), 23),
    ("Europe/Berlin", (2026, 10, 25), (2026, 10, 26), 25),
    ("America/New_York", (2026, 3, 8), (2026, 3, 9), 23),
    ("America/New_York", (2026, 11, 1), (2026, 11, 2), 25),
]
JITTER = 600.0


def local(zone: str, day: tuple[int, int, int]) -> float:
    return datetime(*day, tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize(("zone", "day", "after", "hours"), DAYS)
def test_pumps_fire_each_slot_once_across_a_dst_change_with_jitter(
    tmp_path: Path, zone: str, day: tuple[int, int, int], after: tuple[int, int, int], hours: int
) -> None:
    schedule = {"kind": "schedule", "cron": "0 * * * *", "timezone": zone, "name": "hourly",
                "jitter": JITTER}  # fmt: skip
    spec = parse_spec({"name": "wf", "nodes": [{"id": "a", "task": "m:f"}],
                       "triggers": [schedule]})  # fmt: skip
    trigger = spec.triggers[0]
    assert isinstance(trigger, ScheduleTrigger)
    store = SQLiteStore(tmp_path / "keel.db")
    store.deploy([(spec, None)], 1.0)
    start, end = local(zone, day), local(zone, after)
    clock = FakeClock(start - 60)
    pumps = [SchedulePump(store, RunCache(store), clock=clock, every=300.0) for _ in range(2)]
    rng = random.Random(11)
    while clock.now() < end + JITTER + GRACE:
        clock.advance(rng.uniform(0.5, GRACE - 1))
        pumps[rng.randrange(2)].run(clock.now())

    runs = store.list_runs(started_by="schedule:hourly", limit=1000)
    fired: dict[float, float] = {}  # slot -> when its run was created
    for run in runs:
        first = store.first_event(run.id)
        assert first is not None
        fired[slot_of_key(first.event.trigger["key"])] = run.created_at  # type: ignore[attr-defined]
    assert len(fired) == len(runs)  # no slot twice
    expected = list(slots_between(trigger, start, end - 1))
    assert len(expected) == hours  # 23 on spring-forward day, 25 on fall-back day
    assert sorted(fired) == list(slots_between(trigger, start - 60, max(fired)))  # none invented
    assert [slot for slot in sorted(fired) if slot < end] == expected  # none lost
    for slot, created in fired.items():
        fire_at = slot + jitter_of("hourly", trigger, slot)
        assert fire_at <= created < fire_at + GRACE
    store.close()
