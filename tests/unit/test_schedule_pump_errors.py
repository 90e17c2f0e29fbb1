"""A look of the schedule pump that fails, whatever the error, is logged and made again
after a pause: neither a worker's loop nor ``keel serve``'s schedule thread ends. A slot
whose input the workflow refuses is reported in a user's terms."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from keel.cli.service_commands import _start_schedules
from keel.errors import StoreUnavailableError
from keel.runtime.clock import FakeClock
from keel.runtime.runs import RunCache
from keel.runtime.triggers.schedule_pump import SchedulePump
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.spec import parse_spec
from keel.store.schedules import ScheduleState
from keel.store.sqlite import SQLiteStore

#: 2026-06-01 10:00 UTC
BASE = datetime(2026, 6, 1, 10, tzinfo=UTC).timestamp()


class FailingStore(SQLiteStore):
    """A real SQLite store whose reads of the schedules raise the errors queued in
    ``failures``, one per read, then work."""

    failures: list[Exception]

    def schedules(self) -> list[ScheduleState]:
        if self.failures:
            raise self.failures.pop(0)
        return super().schedules()


def deployed(tmp_path: Path, *failures: Exception, cron: str = "0 * * * *",
             **schedule: Any) -> FailingStore:  # fmt: skip
    store = FailingStore(tmp_path / "keel.db")
    store.failures = list(failures)
    trigger = {"kind": "schedule", "cron": cron, "name": "hourly", **schedule}
    spec = parse_spec({"name": "wf", "nodes": [{"id": "a", "task": "m:f"}],
                       "input_schema": {"type": "object",
                                        "properties": {"day": {"type": "string"}}},
                       "triggers": [trigger]})  # fmt: skip
    store.deploy([(spec, None)], 1.0)
    return store


def test_a_failed_look_is_logged_and_made_again_after_a_growing_pause(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = deployed(tmp_path, RuntimeError("a bug"), StoreUnavailableError("database away"))
    pump = SchedulePump(store, RunCache(store), clock=FakeClock(BASE))
    with caplog.at_level(logging.INFO, logger="keel.schedules"):
        assert pump.run(BASE + 1) == 0
        assert pump.next_at() == BASE + 1 + 2
        assert pump.run(BASE + 2) == 0  # not yet: pausing
        assert pump.run(BASE + 3) == 0
        assert pump.next_at() == BASE + 3 + 4
        assert pump.run(BASE + 7) == 1  # the 10:00 slot, still on time
    bug, away = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert bug.exc_info is not None
    assert "a bug" in str(bug.exc_info[1])
    assert away.exc_info is None  # the database away: its message, no traceback
    assert "database away" in away.getMessage()
    store.close()


def test_a_workers_turn_survives_a_failed_look(tmp_path: Path) -> None:
    store = deployed(tmp_path, RuntimeError("a bug"))
    clock = FakeClock(BASE + 1)
    worker = Worker(store, WorkerOptions(schedules=True), clock=clock)
    try:
        worker.step()
        clock.advance(5)
        worker.step()
        assert len(store.list_runs(started_by="schedule:hourly")) == 1
    finally:
        worker.close()
        store.close()


def test_the_serve_schedule_thread_survives_a_failed_look(tmp_path: Path) -> None:
    store = deployed(tmp_path, RuntimeError("a bug"), cron="* * * * * *")
    stop = threading.Event()
    thread = _start_schedules(store, stop)
    try:
        deadline = time.monotonic() + 60
        while not store.list_runs(started_by="schedule:hourly") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.list_runs(started_by="schedule:hourly")
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join()
        store.close()


def test_a_refused_input_is_reported_in_a_users_terms(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = deployed(tmp_path, input={"day": 3})  # deployed without validation
    pump = SchedulePump(store, RunCache(store), clock=FakeClock(BASE))
    with caplog.at_level(logging.WARNING, logger="keel.schedules"):
        assert pump.run(BASE + 1) == 0
    (record,) = caplog.records
    said = record.getMessage()
    assert said == (
        "schedule hourly (workflow wf): the slot of 2026-06-01 10:00:00 UTC "
        "(2026-06-01T10:00:00Z) started no run: the input of workflow 'wf' does not match "
        "its schema: input.day: 3 is not of type 'string'"
    )
    assert store.schedules()[0].last_slot == BASE  # left out: retrying cannot help
    store.close()
