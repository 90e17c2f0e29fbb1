"""File triggers: a file starts one run once it has finished arriving (never while it
is still being written), the same path with the same content never starts another,
different content does; ``move_to`` moves it once its run is recorded; two watchers on
one folder start one run per file between them."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

from keel.runtime.triggers.files import FileWatcher
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store.records import RunRecord
from keel.store.sqlite import SQLiteStore


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def spec(folder: Path, **trigger: Any) -> WorkflowSpec:
    return parse_spec({"name": "ingest", "nodes": [{"id": "a", "task": "m:f"}],
                       "triggers": [{"kind": "file", "folder": str(folder), "pattern": "*.csv",
                                     **trigger}]})  # fmt: skip


def runs(store: SQLiteStore) -> list[RunRecord]:
    return [r for r in store.list_runs() if r.started_by and r.started_by.startswith("file:")]


def settled(watcher: FileWatcher, ticks: Ticks) -> int:
    """Two looks a settle apart: what a file unchanged between them starts."""
    started = watcher.look()
    ticks.now += 1.0
    return started + watcher.look()


def test_a_file_written_in_chunks_starts_one_run_once_complete(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    store = SQLiteStore(tmp_path / "keel.db")
    store.deploy([(spec(folder), None)], 1.0)
    ticks = Ticks()
    watcher = FileWatcher(store, monotonic=ticks)
    path = folder / "orders.csv"
    content = b""
    with path.open("wb") as handle:
        for chunk in (b"id,total\n", b"1,12\n" * 1000, b"2,40\n" * 1000):
            handle.write(chunk)
            handle.flush()
            content += chunk
            assert watcher.look() == 0  # still changing at every look
            ticks.now += 1.0
    (folder / "notes.txt").write_text("not a csv")

    assert settled(watcher, ticks) == 1
    assert settled(watcher, ticks) == 0
    (run,) = runs(store)
    digest = hashlib.sha256(content).hexdigest()
    assert run.input == {"path": str(path), "sha256": digest}
    assert run.started_by == f"file:{folder}"
    first = store.history(run.id)[0].event
    assert first.trigger == {"kind": "file", "source": str(folder),  # type: ignore[attr-defined]
                             "key": f"{path}:{digest}"}  # fmt: skip
    store.close()


def test_the_same_content_again_starts_none_and_other_content_one(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    store = SQLiteStore(tmp_path / "keel.db")
    store.deploy([(spec(folder, input={"name": "event.name", "size": "event.size"}), None)],
                 1.0)  # fmt: skip
    ticks = Ticks()
    watcher = FileWatcher(store, monotonic=ticks)
    path = folder / "a.csv"
    path.write_bytes(b"1,2\n")
    assert settled(watcher, ticks) == 1
    path.unlink()
    watcher.look()
    path.write_bytes(b"1,2\n")  # the same file arrives again
    assert settled(watcher, ticks) == 0
    assert FileWatcher(store, monotonic=ticks).look() == 0  # nor does another watcher
    path.write_bytes(b"1,2\n3,4\n")
    assert settled(watcher, ticks) == 1
    assert sorted(r.input["size"] for r in runs(store)) == [4, 8]
    assert {r.input["name"] for r in runs(store)} == {"a.csv"}
    store.close()


def test_move_to_moves_a_file_once_its_run_is_recorded(tmp_path: Path) -> None:
    folder, done = tmp_path / "in", tmp_path / "in" / "done"
    folder.mkdir()
    store = SQLiteStore(tmp_path / "keel.db")
    store.deploy([(spec(folder, move_to=str(done), filter="event.size > 0"), None)], 1.0)
    ticks = Ticks()
    watcher = FileWatcher(store, monotonic=ticks)
    (folder / "a.csv").write_bytes(b"x")
    (folder / "empty.csv").write_bytes(b"")

    assert settled(watcher, ticks) == 1
    assert sorted(p.name for p in done.iterdir()) == ["a.csv"]
    (run,) = runs(store)
    assert run.input["path"] == str(done / "a.csv")  # where the run's task finds it
    assert (folder / "empty.csv").exists()  # its filter said no: left where it is
    (folder / "a.csv").write_bytes(b"x")  # the same again: no run, moved beside the first
    assert settled(watcher, ticks) == 0
    assert sorted(p.name for p in done.iterdir()) == ["a.1.csv", "a.csv"]
    assert len(runs(store)) == 1
    store.close()


def test_two_watchers_on_one_folder_start_one_run_per_file(tmp_path: Path) -> None:
    folder, done = tmp_path / "in", tmp_path / "done"
    folder.mkdir()
    first = SQLiteStore(tmp_path / "keel.db")
    first.deploy([(spec(folder, move_to=str(done)), None)], 1.0)
    second = SQLiteStore(tmp_path / "keel.db")  # as another process would
    stop = threading.Event()
    watchers = [FileWatcher(store, settle=0.05) for store in (first, second)]
    threads = [threading.Thread(target=w.run, args=(stop,)) for w in watchers]
    for thread in threads:
        thread.start()
    try:
        for number in range(8):
            (folder / f"{number}.csv").write_bytes(f"{number}\n".encode() * 100)
        deadline = time.monotonic() + 60
        while len(list(folder.glob("*.csv"))) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert sorted(p.name for p in done.iterdir()) == [f"{n}.csv" for n in range(8)]
    # each run is given where its file was moved to, and finds it there
    assert sorted(r.input["path"] for r in runs(first)) == sorted(
        str(done / f"{n}.csv") for n in range(8))  # fmt: skip
    first.close()
    second.close()
