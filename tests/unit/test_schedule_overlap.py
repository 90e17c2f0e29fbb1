"""Overlap concerns the runs a schedule's own slots started, every one not ended yet; a
backfill's or a trigger-now's runs (a person's act) are neither waited for, skipped
behind nor cancelled, and ``--started-by schedule:NAME`` still lists them. Which runs
are the schedule's own is read from each run's first event, once per run, never from
its whole history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from keel.engine.state import is_finished
from keel.runtime.clock import FakeClock
from keel.runtime.runs import RunCache
from keel.runtime.triggers.schedule_pump import SchedulePump
from keel.runtime.triggers.schedule_views import backfill, trigger_now
from keel.spec import parse_spec
from keel.store.records import StoredEvent
from keel.store.sqlite import SQLiteStore

HOUR = 3600.0
#: 2026-06-01 10:00 UTC
BASE = datetime(2026, 6, 1, 10, tzinfo=UTC).timestamp()


class CountedStore(SQLiteStore):
    """A real SQLite store that counts the reads of histories and of first events."""

    histories = 0
    firsts = 0

    def history(self, run_id: str, after_seq: int = 0) -> list[StoredEvent]:
        self.histories += 1
        return super().history(run_id, after_seq)

    def first_event(self, run_id: str) -> StoredEvent | None:
        self.firsts += 1
        return super().first_event(run_id)


def deploy(store: SQLiteStore, **schedule: Any) -> None:
    trigger = {"kind": "schedule", "cron": "0 * * * *", "name": "hourly", **schedule}
    spec = parse_spec({"name": "wf", "nodes": [{"id": "a", "task": "m:f"}], "triggers": [trigger]})
    store.deploy([(spec, None)], 1.0)


def opened(tmp_path: Path, **schedule: Any) -> tuple[CountedStore, SchedulePump, FakeClock]:
    store = CountedStore(tmp_path / "keel.db")
    deploy(store, **schedule)
    clock = FakeClock(BASE)
    return store, SchedulePump(store, RunCache(store), clock=clock), clock


def look(pump: SchedulePump, clock: FakeClock, at: float) -> int:
    clock.advance(at - clock.now())
    pump.look_now()
    return pump.run(at)


def live(store: SQLiteStore) -> list[str]:
    """The ids of the schedule's runs not ended."""
    return sorted(run.id for run in store.list_runs(started_by="schedule:hourly", limit=100)
                  if not is_finished(run.status))  # fmt: skip


@pytest.mark.parametrize("overlap", ["skip", "queue", "cancel_previous"])
def test_backfilled_and_triggered_runs_do_not_hold_the_next_slot(
    tmp_path: Path, overlap: str
) -> None:
    store, pump, clock = opened(tmp_path, overlap=overlap)
    plans = RunCache(store)
    asked = [item["run"] for item in backfill(store, plans, "hourly", BASE - 3 * HOUR,
                                              BASE - HOUR, BASE)]  # fmt: skip
    asked.append(trigger_now(store, plans, "hourly", BASE))
    assert look(pump, clock, BASE + 1) == 1  # 10:00, beside four runs a person started
    assert sorted(set(asked) - set(live(store))) == []  # none of those was cancelled
    assert len(store.list_runs(started_by="schedule:hourly", limit=100)) == 5
    store.close()


def test_cancel_previous_cancels_every_run_of_the_schedules_own_slots(tmp_path: Path) -> None:
    """Two of its runs go (deployed with ``allow`` then); a backfill's run is left."""
    store, pump, clock = opened(tmp_path, overlap="allow")
    look(pump, clock, BASE + 1)
    look(pump, clock, BASE + HOUR + 1)
    own = live(store)
    (asked,) = [item["run"] for item in backfill(store, RunCache(store), "hourly", BASE - HOUR,
                                                 BASE - HOUR, BASE)]  # fmt: skip
    deploy(store, overlap="cancel_previous")
    assert look(pump, clock, BASE + 2 * HOUR + 1) == 1
    still = live(store)
    assert asked in still
    assert not set(own) & set(still)
    assert len(still) == 2  # the backfill's and 12:00's
    store.close()


def test_each_runs_first_event_is_read_once_and_no_history(tmp_path: Path) -> None:
    """A slot queued behind a run looks every second: its run's first event is read at
    the first look only."""
    store, pump, clock = opened(tmp_path, overlap="queue")
    look(pump, clock, BASE + 1)
    for second in range(60):
        assert look(pump, clock, BASE + HOUR + second) == 0
    assert store.firsts == 1
    assert store.histories == 0
    store.close()
