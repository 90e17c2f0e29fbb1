"""File triggers: a file starts one run once it has finished arriving (never while it
is still being written), the same path with the same content never starts another,
different content does; ``move_to`` moves it once its run is recorded; two watchers on
one folder start one run per file between them. A symlink is never followed (read,
hashed or moved), even one swapped in after the file settled; what a trigger fired for
stays its own when a deploy lists the triggers in another order."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from keel.runtime.triggers import files
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
                             "key": f"{path.name}:{digest}"}  # fmt: skip
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


def test_a_symlink_in_the_folder_is_never_followed(tmp_path: Path) -> None:
    folder, done = tmp_path / "in", tmp_path / "done"
    folder.mkdir()
    outside = tmp_path / "secret.csv"  # a file keel may read and the writer may not
    outside.write_bytes(b"secret\n")
    (folder / "link.csv").symlink_to(outside)
    (folder / "dir.csv").symlink_to(tmp_path)
    store = SQLiteStore(tmp_path / "keel.db")
    store.deploy([(spec(folder, move_to=str(done)), None)], 1.0)
    ticks = Ticks()
    watcher = FileWatcher(store, monotonic=ticks)
    (folder / "real.csv").write_bytes(b"1\n")

    assert settled(watcher, ticks) == 1
    assert settled(watcher, ticks) == 0
    (run,) = runs(store)
    assert run.input["path"] == str(done / "real.csv")  # only the regular file
    assert outside.read_bytes() == b"secret\n"  # not moved, not changed
    assert (folder / "link.csv").is_symlink()  # left where it was
    assert sorted(p.name for p in done.iterdir()) == ["real.csv"]
    store.close()


def test_a_file_swapped_for_a_symlink_after_it_settled_is_not_read_nor_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, done = tmp_path / "in", tmp_path / "done"
    folder.mkdir()
    outside = tmp_path / "secret.csv"
    outside.write_bytes(b"secret\n")
    store = SQLiteStore(tmp_path / "keel.db")
    store.deploy([(spec(folder, move_to=str(done)), None)], 1.0)
    ticks = Ticks()
    watcher = FileWatcher(store, monotonic=ticks)
    path = folder / "a.csv"
    path.write_bytes(b"secret\n")  # the same size as what it is swapped for
    assert watcher.look() == 0
    ticks.now += 1.0
    scan = files._regular_files

    def swapped(where: str) -> list[tuple[Path, files.Identity]]:
        """The scan, then the writer wins the race: a symlink renamed over the file
        between the look that found it settled and its read."""
        found = scan(where)
        (folder / "link").symlink_to(outside)
        os.replace(folder / "link", path)
        return found

    monkeypatch.setattr(files, "_regular_files", swapped)
    assert watcher.look() == 0
    monkeypatch.setattr(files, "_regular_files", scan)
    assert settled(watcher, ticks) == 0
    assert runs(store) == []
    assert outside.read_bytes() == b"secret\n"
    assert path.is_symlink()
    assert not done.exists()
    store.close()


def test_a_symlink_swapped_in_after_the_read_is_not_moved_to_move_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, done = tmp_path / "in", tmp_path / "done"
    folder.mkdir()
    outside = tmp_path / "secret.csv"
    outside.write_bytes(b"secret\n")
    store = SQLiteStore(tmp_path / "keel.db")
    store.deploy([(spec(folder, move_to=str(done)), None)], 1.0)
    ticks = Ticks()
    watcher = FileWatcher(store, monotonic=ticks)
    path = folder / "a.csv"
    path.write_bytes(b"1\n")
    read = files.sha256_of

    def then_swapped(where: Path, expected: files.Identity | None = None) -> str | None:
        digest = read(where, expected)  # the real file is read; then the race is won
        (folder / "link").symlink_to(outside)
        os.replace(folder / "link", path)
        return digest

    monkeypatch.setattr(files, "sha256_of", then_swapped)
    assert settled(watcher, ticks) == 1  # what was read arrived: its run starts
    assert path.is_symlink()  # but the symlink in its place stays, not handed to the run
    assert not done.exists()
    assert outside.read_bytes() == b"secret\n"
    store.close()


def test_sha256_of_reads_regular_files_only_and_only_the_one_expected(tmp_path: Path) -> None:
    regular = tmp_path / "a.csv"
    regular.write_bytes(b"abc")
    expected = files.identity_of(os.stat(regular))
    assert files.sha256_of(regular, expected) == hashlib.sha256(b"abc").hexdigest()
    link = tmp_path / "link.csv"
    link.symlink_to(regular)
    assert files.sha256_of(link) is None
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    assert files.sha256_of(fifo) is None  # not waited on: no writer will come
    other = tmp_path / "b.csv"
    other.write_bytes(b"abc")
    os.replace(other, regular)  # another file of the same size now at the path
    assert files.sha256_of(regular, expected) is None
    assert files.sha256_of(tmp_path / "gone.csv") is None


def watching(store: SQLiteStore, name: str, folder: Path, *patterns: str) -> None:
    """Deploy ``name`` with one file trigger on ``folder`` per pattern, in that order."""
    triggers = [{"kind": "file", "folder": str(folder), "pattern": p} for p in patterns]
    store.deploy([(parse_spec({"name": name, "nodes": [{"id": "a", "task": "m:f"}],
                               "triggers": triggers}), None)], 1.0)  # fmt: skip


def test_what_a_trigger_fired_for_does_not_move_with_its_place_in_the_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    store = SQLiteStore(tmp_path / "keel.db")
    watching(store, "alpha", folder, "*.csv")
    watching(store, "beta", folder, "*")
    ticks = Ticks()
    watcher = FileWatcher(store, refresh=0, monotonic=ticks)  # rereads the triggers each look
    (folder / "y.txt").write_bytes(b"y\n")
    assert settled(watcher, ticks) == 1  # beta's
    hashed: list[Path] = []
    real = files.sha256_of

    def counted(path: Path, expected: files.Identity | None = None) -> str | None:
        hashed.append(path)
        return real(path, expected)

    monkeypatch.setattr(files, "sha256_of", counted)
    # alpha's new version lists a trigger for *.txt second: in the lists of live file
    # triggers it takes the place beta's had, not what beta fired for
    watching(store, "alpha", folder, "*.csv", "*.txt")
    assert settled(watcher, ticks) == 1
    assert [r.started_by for r in runs(store) if r.workflow == "alpha"] == [f"file:{folder}"]
    assert len(hashed) == 1  # once, for alpha's new trigger only
    # the same triggers listed in another order: nothing new, nothing hashed again
    watching(store, "alpha", folder, "*.txt", "*.csv")
    assert settled(watcher, ticks) == 0
    assert len(hashed) == 1
    assert len(runs(store)) == 2
    store.close()


def test_one_folder_seen_through_two_paths_starts_one_run_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two hosts mount a shared folder at different places, and their workers run in
    different directories: the trigger's relative ``folder`` is the same folder for
    both, seen through two absolute paths. The firing is named by the folder as written
    and the file's path in it, so the file starts one run between them."""
    shared = tmp_path / "shared" / "in"
    shared.mkdir(parents=True)
    here, there = tmp_path / "host-a", tmp_path / "host-b"
    for workdir in (here, there):
        workdir.mkdir()
        (workdir / "in").symlink_to(shared, target_is_directory=True)  # its mount point
    store = SQLiteStore(tmp_path / "keel.db")
    store.deploy([(spec(Path("in")), None)], 1.0)
    ticks = Ticks()
    watchers = {
        here: FileWatcher(store, monotonic=ticks),
        there: FileWatcher(store, monotonic=ticks),
    }
    (shared / "a.csv").write_bytes(b"1,2\n")

    def look_from_each() -> int:
        started = 0
        for workdir, watcher in watchers.items():
            monkeypatch.chdir(workdir)
            started += watcher.look()
        return started

    assert look_from_each() == 0
    ticks.now += 1.0
    assert look_from_each() == 1
    (run,) = runs(store)
    assert run.input["path"] == str(here / "in" / "a.csv")  # where its worker found it
    assert run.started_by == "file:in"
    store.close()
