"""File triggers: start a run when a file has finished arriving in a watched folder.

A file has finished arriving when two looks at it ``settle`` seconds apart (or more)
find the same size and modification time: a file still being written in chunks, or
copied, changes between them; one renamed or moved in is whole at once and passes at
the next look. Only the folder's own files whose name matches the trigger's pattern
count (not its subfolders: ``move_to`` may be one).

A file's firing is named by its folder, its path and the sha256 of its content
(``Firing("file", folder, "PATH:SHA256")``), so the same path with the same content
never starts two runs, whichever watchers (threads, processes, hosts) see it and
however often; different content at the same path is a new firing. Once the run is
recorded, the file is moved to ``move_to`` if the trigger says so (a watcher that lost
the race to move it finds it gone, which is fine).

``FileWatcher.look`` is one look at every live file trigger's folder (tests drive it);
``FileWatcher.run`` looks every ``settle`` seconds until stopped, woken sooner by
``watchfiles`` when something in a folder changes, and rereads which triggers are live
every ``refresh`` seconds. ``keel worker`` runs one on a thread of its own.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.errors import InputError
from keel.runtime.runs import RunCache
from keel.runtime.triggers.firing import Armed, Firing, active, fire, mapped_input, matches
from keel.spec.triggers import FileTrigger
from keel.store.protocol import Store

log = logging.getLogger("keel.triggers")

#: seconds between the two looks that find a file's size unchanged
SETTLE = 0.5
#: seconds between two reads of which file triggers are live
REFRESH = 5.0
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class _Seen:
    size: int
    mtime_ns: int
    at: float


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class FileWatcher:
    """Fires the live file triggers for the files that finished arriving."""

    def __init__(
        self,
        store: Store,
        *,
        settle: float = SETTLE,
        refresh: float = REFRESH,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.plans = RunCache(store, capacity=0)
        self.settle = settle
        self.refresh = refresh
        self.monotonic = monotonic
        self._armed: list[Armed] = []
        self._read_at = float("-inf")
        #: each file's size and time at the look that first found them so
        self._seen: dict[tuple[int, str], _Seen] = {}
        #: files already fired for, as they were then (not hashed again while unchanged)
        self._done: dict[tuple[int, str], tuple[int, int]] = {}

    def armed(self) -> list[Armed]:
        """The live file triggers, reread every ``refresh`` seconds."""
        now = self.monotonic()
        if now - self._read_at >= self.refresh:
            self._armed = active(self.store, self.plans, "file")
            self._read_at = now
        return self._armed

    def folders(self) -> list[str]:
        found = {a.trigger.folder for a in self.armed() if isinstance(a.trigger, FileTrigger)}
        return sorted(folder for folder in found if os.path.isdir(folder))

    def look(self) -> int:
        """One look at every watched folder; the number of runs it started."""
        started = 0
        now = self.monotonic()
        present: set[tuple[int, str]] = set()
        for slot, armed in enumerate(self.armed()):
            trigger = armed.trigger
            if not isinstance(trigger, FileTrigger):
                continue
            for path in self._candidates(trigger):
                key = (slot, str(path))
                present.add(key)
                started += self._consider(armed, trigger, path, key, now)
        for gone in (self._seen.keys() | self._done.keys()) - present:
            self._seen.pop(gone, None)
            self._done.pop(gone, None)
        return started

    def _candidates(self, trigger: FileTrigger) -> list[Path]:
        try:
            entries = list(os.scandir(trigger.folder))
        except OSError:  # no such folder (yet): nothing has arrived
            return []
        return [
            Path(entry.path).absolute()
            for entry in entries
            if entry.is_file(follow_symlinks=False)
            and fnmatch.fnmatchcase(entry.name, trigger.pattern)
        ]

    def _consider(
        self, armed: Armed, trigger: FileTrigger, path: Path, key: tuple[int, str], now: float
    ) -> int:
        try:
            stat = path.stat()
        except OSError:  # moved away meanwhile (another watcher)
            return 0
        shape = (stat.st_size, stat.st_mtime_ns)
        if self._done.get(key) == shape:
            return 0
        seen = self._seen.get(key)
        if seen is None or (seen.size, seen.mtime_ns) != shape:
            self._seen[key] = _Seen(stat.st_size, stat.st_mtime_ns, now)
            return 0  # new, or still changing: look again later
        if now - seen.at < self.settle:
            return 0
        started = self._arrived(armed, trigger, path)
        if started is None:  # it went away while being read
            return 0
        self._done[key] = shape
        self._seen.pop(key, None)
        return started

    def _arrived(self, armed: Armed, trigger: FileTrigger, path: Path) -> int | None:
        """Fire for a file that finished arriving, then move it; None if it went away."""
        try:
            before = path.stat()
            digest = sha256_of(path)
            after = path.stat()
        except OSError:
            return None
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            return None  # written to while being read: it has not finished arriving
        size = after.st_size
        # with move_to, the run is given where the file will be (it is moved once the run
        # is recorded: a task reading ``path`` finds it there)
        where = path if trigger.move_to is None else _destination(path, Path(trigger.move_to))
        event: dict[str, Any] = {"path": str(where), "name": path.name, "size": size,
                                 "sha256": digest}  # fmt: skip
        new = False
        try:
            if matches(trigger, "event", event):
                run_input = mapped_input(trigger, "event", event,
                                         {"path": str(where), "sha256": digest})  # fmt: skip
                firing = Firing("file", trigger.folder, f"{path}:{digest}")
                record, new = fire(
                    self.store, armed.spec, run_input, firing, plans=self.plans, same_input=False
                )  # where it goes may differ: same file
                if new:
                    log.info("run %s of %s started: %s arrived", record.id, armed.spec.name,
                             path)  # fmt: skip
            else:
                return 0
        except InputError as exc:
            log.warning("file %s started no run of %s: %s", path, armed.spec.name, exc)
            return 0
        if trigger.move_to is not None:
            _move(path, where)
        return int(new)

    def run(self, stop: threading.Event) -> None:
        """Look until ``stop`` is set: every ``settle`` seconds, sooner when ``watchfiles``
        sees a watched folder change. A failing look (the store down) is logged and
        tried again at the next."""
        while not stop.is_set():
            try:
                folders = self.folders()
                if not folders:
                    self._look_logged()
                    stop.wait(self.settle)
                    continue
                self._watch(folders, stop)
            except Exception:  # the store failed: this thread must not die of it
                log.exception("watching the folders of file triggers failed; again soon")
                stop.wait(self.settle)

    def _watch(self, folders: list[str], stop: threading.Event) -> None:
        """Watch these folders until they are no longer the live ones (or ``stop``)."""
        from watchfiles import watch

        wait_ms = max(1, int(self.settle * 1000))
        for _changes in watch(*folders, stop_event=stop, rust_timeout=wait_ms,
                              yield_on_timeout=True, debounce=wait_ms,
                              raise_interrupt=False):  # fmt: skip
            self._look_logged()
            if self.folders() != folders:
                return

    def _look_logged(self) -> None:
        try:
            self.look()
        except Exception:  # the store failed: look again next time
            log.exception("looking at the watched folders failed")


def _destination(path: Path, folder: Path) -> Path:
    """Where ``path`` goes in ``folder``: its name, or with a numbered suffix if taken."""
    target = folder / path.name
    number = 1
    while target.exists():
        target = folder / f"{path.stem}.{number}{path.suffix}"
        number += 1
    return target


def _move(path: Path, target: Path) -> None:
    """Move a file whose run is recorded to ``target``; gone already (another watcher
    moved it) is fine."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("could not move %s to %s: %s", path, target, exc)


def watch_in_thread(store: Store, stop: threading.Event) -> threading.Thread:
    """Run a ``FileWatcher`` on a daemon thread until ``stop`` is set."""
    watcher = FileWatcher(store)
    thread = threading.Thread(target=watcher.run, args=(stop,), name="keel-files", daemon=True)
    thread.start()
    return thread
