"""``overlap="queue"``: a slot that comes while the schedule's previous run goes waits for
it, however long, and is never counted missed; once the run ended, ``catch_up`` picks
which of the slots that waited start (``skip`` and ``latest``: the newest, ``all``:
each in turn, the newest ``catch_up_limit``). Slots missed while no worker looked,
after the run ended, are caught up (or not) as always."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from keel.engine.state import is_finished
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import cancel_run
from keel.runtime.runs import RunCache
from keel.runtime.triggers.schedule_pump import SchedulePump
from keel.runtime.triggers.schedules import due, slot_of_key
from keel.spec import parse_spec
from keel.spec.triggers import ScheduleTrigger
from keel.store.sqlite import SQLiteStore

HOUR = 3600.0
#: 2026-06-01 10:00 UTC
BASE = datetime(2026, 6, 1, 10, tzinfo=UTC).timestamp()


def hourly(catch_up: str, limit: int = 100) -> ScheduleTrigger:
    return ScheduleTrigger(cron="0 * * * *", overlap="queue", catch_up=catch_up,  # type: ignore[arg-type]
                           catch_up_limit=limit)  # fmt: skip


@pytest.mark.parametrize(("catch_up", "limit", "fired"), [
    ("skip", 100, [3]), ("latest", 100, [3]), ("all", 100, [1, 2, 3]),
    ("all", 2, [2, 3])])  # fmt: skip
def test_slots_that_waited_for_the_previous_run_are_never_missed(
    catch_up: str, limit: int, fired: list[int]
) -> None:
    """The 10:00 run ended at 13:30: the 11:00, 12:00 and 13:00 slots waited for it."""
    ended = BASE + 3.5 * HOUR
    assert due(hourly(catch_up, limit), BASE, ended + 5, held_until=ended) == [
        BASE + h * HOUR for h in fired]  # fmt: skip
    # while it goes, they wait (the pump starts none): the same slots are due
    going = due(hourly(catch_up, limit), BASE, ended + 5, held_until=ended + 5)
    assert going == [BASE + h * HOUR for h in fired]


@pytest.mark.parametrize(("catch_up", "fired"), [
    ("skip", [1]), ("latest", [3]), ("all", [1, 2, 3])])  # fmt: skip
def test_slots_missed_after_the_previous_run_ended_follow_catch_up(
    catch_up: str, fired: list[int]
) -> None:
    """The 10:00 run ended at 11:30, then no worker looked until 13:30: 11:00 waited,
    12:00 and 13:00 were missed (skip fires none of those, latest the newest)."""
    ended = BASE + 1.5 * HOUR
    now = BASE + 3.5 * HOUR
    assert due(hourly(catch_up), BASE, now, held_until=ended) == [BASE + h * HOUR for h in fired]


@pytest.mark.parametrize("catch_up", ["skip", "latest"])
def test_a_slot_on_time_is_the_newest(catch_up: str) -> None:
    """The run ended at 11:30, a worker looks at 14:00:05: 14:00 is on time, it fires."""
    trigger = hourly(catch_up)
    assert due(trigger, BASE, BASE + 4 * HOUR + 5, held_until=BASE + 1.5 * HOUR) == [
        BASE + 4 * HOUR]  # fmt: skip


def _deployed(tmp_path: Path, catch_up: str) -> tuple[SQLiteStore, SchedulePump, FakeClock]:
    store = SQLiteStore(tmp_path / "keel.db")
    trigger = {"kind": "schedule", "cron": "0 * * * *", "overlap": "queue", "catch_up": catch_up}
    spec = parse_spec({"name": "wf", "nodes": [{"id": "a", "task": "m:f"}], "triggers": [trigger]})
    store.deploy([(spec, None)], 1.0)
    clock = FakeClock(BASE)
    return store, SchedulePump(store, RunCache(store), clock=clock), clock


def _look(pump: SchedulePump, clock: FakeClock, at: float) -> int:
    clock.advance(at - clock.now())
    pump.look_now()
    return pump.run(at)


def _slots(store: SQLiteStore) -> list[str]:
    """The slot of each run of the schedule, oldest first."""
    found = []
    for run in store.list_runs(started_by="schedule:wf", limit=100):
        first = store.first_event(run.id)
        assert first is not None
        found.append(first.event.trigger["key"])  # type: ignore[attr-defined]
    return sorted(found)


@pytest.mark.parametrize("catch_up", ["skip", "latest", "all"])
def test_the_queued_slot_starts_once_when_the_previous_run_ends_long_after_it(
    tmp_path: Path, catch_up: str
) -> None:
    store, pump, clock = _deployed(tmp_path, catch_up)
    assert _look(pump, clock, BASE + 1) == 1  # no worker: the 10:00 run stays pending
    (first,) = store.list_runs(started_by="schedule:wf")
    for minutes in (0, 1, 10, 30, 49):  # 11:00 waits, far past the grace
        assert _look(pump, clock, BASE + HOUR + 60 * minutes + 1) == 0
        assert pump.next_at() == clock.now() + 1.0  # looks again soon
    clock.advance(1)
    cancel_run(store, first.id, clock=clock)  # the 10:00 run ends at 11:49:02
    started = [_look(pump, clock, BASE + HOUR + 49 * 60 + s) for s in (3, 4, 60, 600)]
    assert started == [1, 0, 0, 0]
    assert _slots(store) == ["2026-06-01T10:00:00Z", "2026-06-01T11:00:00Z"]
    assert slot_of_key(_slots(store)[1]) == store.schedules()[0].last_slot
    store.close()


@pytest.mark.parametrize(("catch_up", "slots"), [
    ("latest", ["13:00"]), ("all", ["11:00", "12:00", "13:00"])])  # fmt: skip
def test_slots_that_waited_start_one_after_another_or_the_newest(
    tmp_path: Path, catch_up: str, slots: list[str]
) -> None:
    """11:00, 12:00 and 13:00 came while the 10:00 run went (until 13:30): ``all``
    starts each once the one before ended, ``latest`` the newest."""
    store, pump, clock = _deployed(tmp_path, catch_up)
    _look(pump, clock, BASE + 1)
    for hour in (1, 2, 3):
        assert _look(pump, clock, BASE + hour * HOUR + 2) == 0
    at = BASE + 3.5 * HOUR
    for _ in range(4):  # end each run the schedule started, and look
        clock.advance(at - clock.now())
        for run in store.list_runs(started_by="schedule:wf"):
            if not is_finished(run.status):
                cancel_run(store, run.id, clock=clock)
        _look(pump, clock, at + 1)
        at += 60
    assert _slots(store) == ["2026-06-01T10:00:00Z"] + [f"2026-06-01T{t}:00Z" for t in slots]
    store.close()
