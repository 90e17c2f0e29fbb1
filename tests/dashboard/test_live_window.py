"""The live stream's window on the change feed: every change is given once, including
one committed late with a time behind what the stream has read (a slow writer, a clock
behind); what is read again behind the position is read in turns, none skipped; and a
window more than a read behind jumps to the newest rather than read every change since
(the stream then brings its page up to date whole), as does a stream that comes back
(``Last-Event-ID``) or starts from a page drawn long ago."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from keel.authoring.yaml_source import load_yaml_text
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.operations.interventions import pause_run
from keel.server.dashboard import live
from keel.server.dashboard.live import Event, Window, newest, position_text
from keel.store.records import RunChange
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


class Counted:
    """A store that counts the feed's reads and the changes they gave."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.reads = 0
        self.rows = 0

    def runs_changed(self, after: tuple[float, str] | None, limit: int) -> list[RunChange]:
        found = self.store.runs_changed(after, limit)
        self.reads += 1
        self.rows += len(found)
        return found


def test_what_is_read_again_is_read_in_turns_none_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "BATCH", 4)
    store = SQLiteStore(tmp_path / "keel.db")
    (spec,) = load_yaml_text(WAITING, "waits.yaml")
    start_run(store, spec, {}, clock=FakeClock(1000.0))
    window = Window(newest(store))
    window.read(store)
    given = {start_run(store, spec, {}, clock=FakeClock(1000.5 + i / 10)).id for i in range(3)}
    assert {c.id for c in window.read(store) or []} == given
    # four changes behind the position are read again (a whole read): three more after
    started = {start_run(store, spec, {}, clock=FakeClock(1001.0 + i / 10)).id for i in range(3)}
    counted = Counted(store)
    assert {c.id for c in window.read(counted) or []} == started  # type: ignore[arg-type]
    assert counted.reads == 2
    assert window.read(store) == []
    store.close()


def test_a_window_more_than_a_read_behind_jumps_to_the_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "BATCH", 3)
    store = SQLiteStore(tmp_path / "keel.db")
    (spec,) = load_yaml_text(WAITING, "waits.yaml")
    start_run(store, spec, {}, clock=FakeClock(1000.0))
    window = Window(newest(store))
    for i in range(30):
        start_run(store, spec, {}, clock=FakeClock(1001.0 + i))
    counted = Counted(store)

    assert window.read(counted) is None  # type: ignore[arg-type]
    assert window.position == newest(store)
    assert counted.rows <= 2 * 3 + 1  # two reads and the newest: not the 30 changes
    later = start_run(store, spec, {}, clock=FakeClock(1031.0)).id
    assert later in {c.id for c in window.read(store) or []}  # followed from there
    store.close()


def _stream(store: Any, headers: dict[str, str], start: str) -> tuple[list[int], str]:
    """A stream's follows (-1: brought up to date whole, else how many changes) until
    its first, and what it sent."""
    app = FastAPI()
    app.state.closing = threading.Event()
    sizes: list[int] = []

    def follow(changes: Sequence[RunChange] | None) -> list[Event]:
        sizes.append(-1 if changes is None else len(changes))
        app.state.closing.set()  # the stream ends after this
        return [Event("seen", len(changes or ()))]

    @app.get("/stream")
    def route(request: Request) -> StreamingResponse:
        return live.stream(request, store, follow)

    with TestClient(app) as client:
        text = client.get(f"/stream?from={start}", headers=headers).text
    return sizes, text


def test_a_page_drawn_long_ago_or_a_reconnect_is_brought_up_to_date_whole(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    (spec,) = load_yaml_text(WAITING, "waits.yaml")
    start_run(store, spec, {}, clock=FakeClock(1000.0))
    drawn = position_text(newest(store))
    for i in range(5):  # a minute after the page was drawn: far behind, if few
        start_run(store, spec, {}, clock=FakeClock(1000.0 + live.BEHIND_SECONDS + 30 + i))
    now = f"id: {position_text(newest(store))}"
    counted = Counted(store)

    sizes, text = _stream(counted, {}, drawn)
    assert sizes == [-1]  # the page whole, not the five changes since
    assert now in text  # from the newest on
    assert counted.rows <= 1  # the newest, nothing more
    sizes, text = _stream(counted, {"Last-Event-ID": drawn}, drawn)
    assert sizes == [-1]
    assert now in text
    assert counted.rows <= 2
    store.close()


def test_a_page_drawn_a_moment_ago_is_given_what_changed_since(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    (spec,) = load_yaml_text(WAITING, "waits.yaml")
    start_run(store, spec, {}, clock=FakeClock(1000.0))
    drawn = position_text(newest(store))
    for i in range(3):
        start_run(store, spec, {}, clock=FakeClock(1010.0 + i))

    sizes, _ = _stream(store, {}, drawn)
    assert sizes == [1 + 3]  # the three, and the run at the position (read again behind)
    store.close()
