"""File triggers: start a run when a file has finished arriving in a watched folder.

A file has finished arriving when two looks at it ``settle`` seconds apart (or more)
find the same size and modification time: a file still being written in chunks, or
copied, changes between them; one renamed or moved in is whole at once and passes at
the next look. Only the folder's own files whose name matches the trigger's pattern
count (not its subfolders: ``move_to`` may be one).

A file's firing is named by its folder as the trigger writes it, its path in that
folder and the sha256 of its content (``Firing("file", folder, "NAME:SHA256")``), so
the same path with the same content never starts two runs, whichever watchers
(threads, processes, hosts) see it and however often, wherever each host mounts the
folder or whatever directory a worker runs in (a relative ``folder``); different
content at the same path is a new firing. The run is given the file's path as the
watcher that started it sees it (where it is moved to, with ``move_to``): what its task
opens. Once the run is recorded, the file is moved to ``move_to`` if the trigger says
so (a watcher that lost the race to move it finds it gone, which is fine). A workflow
that refuses a file (its input schema, a filter or mapping that fails) starts no run
for it, which the log says: no caller waits for the answer.

Only regular files are read. Whoever may write to a watched folder may put a symlink
there, to a file keel can read and they cannot: a symlink is never a file that arrived
(``lstat``), the file is opened without following one (``O_NOFOLLOW``) and must still be
the file whose size settled (device, inode, size and time), and it is moved only if it
still is: what a symlink points to is never read, hashed or moved.

Whether a file has finished arriving, and its hash, are the file's own: each is found
once per file whichever triggers watch its folder, and what a trigger has fired for is
kept by the trigger's workflow and definition, never by its place in the lists (a
deploy that lists the triggers in another order neither hashes a file again nor takes
one trigger's files for another's).

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
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.runtime.runs import RunCache
from keel.runtime.triggers.firing import Armed, Firing, Offer, active, prepare, start
from keel.spec.triggers import FileTrigger
from keel.store.protocol import Store

log = logging.getLogger("keel.triggers")

#: seconds between the two looks that find a file's size unchanged
SETTLE = 0.5
#: seconds between two reads of which file triggers are live
REFRESH = 5.0
_CHUNK = 1 << 20


#: what names one file's state: device, inode, size and modification time (a file
#: replaced by another, renamed over it, is another file even with the same size)
Identity = tuple[int, int, int, int]


def identity_of(result: os.stat_result) -> Identity:
    return (result.st_dev, result.st_ino, result.st_size, result.st_mtime_ns)


@dataclass(frozen=True, slots=True)
class _Seen:
    identity: Identity
    at: float


@dataclass(frozen=True, slots=True)
class _Watch:
    """A live file trigger and what names it whatever its place in the lists: its
    workflow and its definition (a new version listing it elsewhere is the same watch)."""

    armed: Armed
    trigger: FileTrigger
    name: tuple[str, str]


def sha256_of(path: Path, expected: Identity | None = None) -> str | None:
    """The sha256 of the regular file at ``path``, read through a descriptor opened
    without following a symlink; None when ``path`` is a symlink now (whatever it
    points to is never read), not a regular file (a FIFO is never waited on), gone,
    another file than ``expected`` describes, or written to while being read."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # ELOOP: a symlink; ENOENT: moved away
        return None
    with os.fdopen(fd, "rb") as handle:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            return None
        if expected is not None and identity_of(before) != expected:
            return None  # not the file whose size was seen to settle
        digest = hashlib.sha256()
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
        if identity_of(os.fstat(fd)) != identity_of(before):
            return None  # still being written: it has not finished arriving
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
        #: the live file triggers by folder, in the order of ``_armed``
        self._watching: dict[str, list[_Watch]] = {}
        self._read_at = float("-inf")
        #: each file's identity at the look that first found it so, by path: whether a
        #: file has finished arriving is the file's own, whichever triggers watch it
        self._seen: dict[str, _Seen] = {}
        #: the files each watch fired for, as they were then (not hashed again while
        #: unchanged), by watch and path
        self._done: dict[tuple[tuple[str, str], str], Identity] = {}

    def armed(self) -> list[Armed]:
        """The live file triggers, reread every ``refresh`` seconds."""
        now = self.monotonic()
        if now - self._read_at >= self.refresh:
            self._armed = active(self.store, self.plans, "file")
            self._watching = {}
            for armed in self._armed:
                if isinstance(armed.trigger, FileTrigger):
                    name = (armed.spec.name, armed.trigger.model_dump_json())
                    folder = str(Path(armed.trigger.folder).absolute())
                    self._watching.setdefault(folder, []).append(_Watch(armed, armed.trigger, name))
            self._read_at = now
        return self._armed

    def folders(self) -> list[str]:
        found = {a.trigger.folder for a in self.armed() if isinstance(a.trigger, FileTrigger)}
        return sorted(folder for folder in found if os.path.isdir(folder))

    def look(self) -> int:
        """One look at every watched folder; the number of runs it started."""
        started = 0
        now = self.monotonic()
        self.armed()
        present: set[str] = set()
        for folder, watches in self._watching.items():
            for path, identity in _regular_files(folder):
                wanted = [w for w in watches if fnmatch.fnmatchcase(path.name, w.trigger.pattern)]
                if wanted:
                    present.add(str(path))
                    started += self._consider(wanted, path, identity, now)
        self._seen = {key: seen for key, seen in self._seen.items() if key in present}
        self._done = {key: done for key, done in self._done.items() if key[1] in present}
        return started

    def _consider(self, wanted: list[_Watch], path: Path, identity: Identity, now: float) -> int:
        key = str(path)
        pending = [w for w in wanted if self._done.get((w.name, key)) != identity]
        if not pending:
            return 0
        seen = self._seen.get(key)
        if seen is None or seen.identity != identity:
            self._seen[key] = _Seen(identity, now)
            return 0  # new, or still changing: look again later
        if now - seen.at < self.settle:
            return 0
        # hashed once for every trigger that wants it, and only if it is still the file
        # that settled (a symlink put in its place since is not followed)
        digest = sha256_of(path, identity)
        self._seen.pop(key, None)
        if digest is None:
            return 0  # replaced, gone or changing: seen anew at the next look
        started = 0
        for watch in pending:
            fired, moved = self._arrived(watch, path, identity, digest)
            self._done[(watch.name, key)] = identity
            started += fired
            if moved:  # the rest cannot have it (a deploy lets no other watch its folder)
                break
        return started

    def _arrived(
        self, watch: _Watch, path: Path, identity: Identity, digest: str
    ) -> tuple[int, bool]:
        """Fire ``watch`` for a file that finished arriving, then move it if it says so:
        the number of runs started, and whether the file was moved."""
        armed, trigger = watch.armed, watch.trigger
        # with move_to, the run is given where the file will be (it is moved once the run
        # is recorded: a task reading ``path`` finds it there)
        where = path if trigger.move_to is None else _destination(path, Path(trigger.move_to))
        event: dict[str, Any] = {"path": str(where), "name": path.name, "size": identity[2],
                                 "sha256": digest}  # fmt: skip
        batch = prepare([Offer(armed, event, {"path": str(where), "sha256": digest})], "event")
        # the folder as written and the file's path in it (its name: only the folder's own
        # files count), never where this host mounts it nor the worker's directory
        firing = Firing("file", trigger.folder, f"{path.name}:{digest}")
        # same_input=False: where the file is moved to may differ, it is the same file
        emitted, refused = start(self.store, batch, firing, plans=self.plans, same_input=False)
        for refusal in (*batch.refused, *refused):  # nobody waits for it: said in the log
            log.warning("file %s started no run of %s: %s", path, refusal.workflow,
                        refusal.reason)  # fmt: skip
        if not emitted:
            return 0, False
        new = emitted[0].started
        if new:
            log.info("run %s of %s started: %s arrived", emitted[0].run.id, armed.spec.name,
                     path)  # fmt: skip
        if trigger.move_to is None:
            return int(new), False
        return int(new), _move(path, where, identity)

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


def _regular_files(folder: str) -> list[tuple[Path, Identity]]:
    """The folder's own regular files with their identities, as ``lstat`` has them: a
    symlink (to a file or not, in the folder or not), a subfolder, a FIFO, a socket or
    a device is not a file that arrived."""
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no such folder (yet): nothing has arrived
        return []
    found: list[tuple[Path, Identity]] = []
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            lstat = entry.stat(follow_symlinks=False)
        except OSError:  # gone meanwhile
            continue
        if stat.S_ISREG(lstat.st_mode):
            found.append((Path(entry.path).absolute(), identity_of(lstat)))
    return found


def _destination(path: Path, folder: Path) -> Path:
    """Where ``path`` goes in ``folder``: its name, or with a numbered suffix if taken
    (by anything, a dangling symlink too: it is not replaced)."""
    target = folder / path.name
    number = 1
    while os.path.lexists(target):
        target = folder / f"{path.stem}.{number}{path.suffix}"
        number += 1
    return target


def _move(path: Path, target: Path, identity: Identity) -> bool:
    """Move a file whose run is recorded to ``target``, if ``path`` still is the file
    that was read (``identity``; a symlink put in its place is left, and what it points
    to never moves); whether it went. Gone already (another watcher moved it) is fine."""
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return True
    except OSError as exc:
        log.warning("could not move %s to %s: %s", path, target, exc)
        return False
    if (now.st_dev, now.st_ino) != identity[:2] or not stat.S_ISREG(now.st_mode):
        log.warning("not moving %s: another file took its place after it was read", path)
        return False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
    except FileNotFoundError:
        return True
    except OSError as exc:
        log.warning("could not move %s to %s: %s", path, target, exc)
        return False
    return True


def watch_in_thread(store: Store, stop: threading.Event) -> threading.Thread:
    """Run a ``FileWatcher`` on a daemon thread until ``stop`` is set."""
    watcher = FileWatcher(store)
    thread = threading.Thread(target=watcher.run, args=(stop,), name="keel-files", daemon=True)
    thread.start()
    return thread
