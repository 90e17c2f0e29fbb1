"""The live stream's window on the change feed: every change is given once, including
one committed late with a time behind what the stream has read (a slow writer, a clock
behind), and a burst larger than one read is given whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.authoring.yaml_source import load_yaml_text
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.operations.interventions import pause_run
from keel.server.dashboard import live
from keel.server.dashboard.live import Window, newest
from keel.store.sqlite import SQLiteStore

WAITING = """
name: waits
nodes:
  - {id: ping, kind: signal, signal: ping}
"""


def test_a_change_committed_late_is_given_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    (spec,) = load_yaml_text(WAITING, "waits.yaml")
    early = start_run(store, spec, {}, clock=FakeClock(1000.0)).id
    start_run(store, spec, {}, clock=FakeClock(1010.0))
    window = Window(newest(store))
    assert early not in {c.id for c in window.read(store)}  # 10 s behind: not re-read
    # decided at 1009 (before the stream's position, 1010), committed only now
    pause_run(store, early, by="slow-writer", clock=FakeClock(1009.0))
    first = window.read(store)
    assert [c.id for c in first] == [early]
    assert first[0].status == "paused"
    assert window.read(store) == []  # not given twice
    store.close()


def test_a_burst_larger_than_one_read_is_given_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "BATCH", 3)
    store = SQLiteStore(tmp_path / "keel.db")
    (spec,) = load_yaml_text(WAITING, "waits.yaml")
    start_run(store, spec, {}, clock=FakeClock(1000.0))
    window = Window(newest(store))
    window.read(store)
    started = {start_run(store, spec, {}, clock=FakeClock(1001.0 + i)).id for i in range(8)}
    assert {c.id for c in window.read(store)} == started
    assert window.read(store) == []
    store.close()
