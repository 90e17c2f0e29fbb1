"""Wake-ups between processes on one SQLite file: Unix datagram sockets in a private
folder beside the database (``<file>.wake/``).

Each listening store (a worker) binds one socket there (``<pid>-<random>.sock``) and a
daemon thread hands each datagram it receives to ``wake`` as a ``Wakeup``. A commit that
left work for others sends its payloads to every socket in the folder but its own, once
the commit is visible (``SQLiteDialect.write``): nothing is sent, and nothing costs, when
nobody listens. Sending never fails a commit and never waits: a socket whose owner died
is removed, one whose buffer is full is skipped (its worker has a wake-up pending
anyway), any other error is logged at debug. The folder's listing is kept until the
folder changes (a socket bound or removed; one ``stat`` per send tells), a send fails,
or ``REFRESH`` seconds pass, so a worker that just started is woken by the next commit.
A socket path longer than ``AF_UNIX`` takes (107 bytes: a deep folder) is reached
through the folder opened once
(``/proc/self/fd/N/name``, on Linux). Where sockets cannot be used (``:memory:``, a path
too long and no ``/proc``, a folder that cannot be created), ``listen`` returns None and
the worker polls.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path

from keel.store.wakeups import Wakeup, decode

log = logging.getLogger("keel.store.sqlite")

#: seconds the folder's listing is trusted before it is read again
REFRESH = 1.0
#: how long after a change of the folder a listing is trusted to show it (file system
#: timestamps move in ticks of a few milliseconds)
_SETTLED_NS = 50_000_000
#: the longest socket path ``AF_UNIX`` takes (``sun_path`` less its NUL, on Linux)
_MAX_PATH = 107
_SUFFIX = ".sock"
#: the longest name ``listen`` gives a socket: ``<pid>-<8 hex>.sock``
_NAME_ROOM = 10 + 1 + 8 + len(_SUFFIX)
#: where an open folder can be named in a short path
_PROC_FDS = "/proc/self/fd"


def wake_folder(database: Path) -> Path | None:
    """The folder of ``database``'s sockets, or None where there can be none."""
    if str(database) == ":memory:" or not hasattr(socket, "AF_UNIX"):
        return None
    folder = Path(os.path.abspath(database)).with_name(database.name + ".wake")
    if _fits(folder) or os.path.isdir(_PROC_FDS):
        return folder
    log.debug("%s: path too long for wake-up sockets; workers poll", folder)
    return None


def _fits(folder: Path) -> bool:
    """Whether a socket in ``folder`` can be named by its path."""
    return len(os.fsencode(folder)) + 1 + _NAME_ROOM <= _MAX_PATH


class _Listening:
    """One bound socket and the thread that receives on it."""

    def __init__(self, path: Path, address: bytes, wake: Callable[[Wakeup], None]) -> None:
        self.path, self.address = path, address
        self._wake = wake
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.bind(address)
        except BaseException:
            self._sock.close()
            raise
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keel-wake", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                data = self._sock.recv(4096)
                if self._stopped.is_set():
                    return
                if data:
                    try:
                        self._wake(decode(data.decode("utf-8", "replace")))
                    except Exception:  # the next wake-up must still be heard
                        log.exception("handling a wake-up failed")
        except OSError as exc:
            log.debug("wake-up socket %s: %s", self.path, exc)
        finally:
            self._sock.close()

    def stop(self) -> None:
        """Remove the socket file, then end the thread (an empty datagram wakes it)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as poke:
            poke.setblocking(False)
            with suppress(OSError):  # a full buffer: the thread is receiving, sees the flag
                poke.sendto(b"", self.address)
        with suppress(OSError):
            os.unlink(self.path)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)


class WakeSockets:
    """The wake-up sockets beside one database file: this store's listeners, and the
    others' sockets it sends to."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._own: dict[str, _Listening] = {}
        self._lock = threading.Lock()
        self._listing: list[str] = []
        self._listed_at = float("-inf")
        #: the folder's modification time when it was listed (a socket bound or removed
        #: since changes it), and whether that listing may have missed a change made in
        #: the same tick of the file system's clock
        self._listed_mtime = -1
        self._unsettled = True
        self._sender: socket.socket | None = None
        self._fits = _fits(folder)
        #: the folder opened, when its sockets' paths are too long to name them by
        self._folder_fd: int | None = None

    def _address(self, name: str) -> bytes:
        """What names the socket ``name`` for ``bind`` and ``sendto``."""
        if self._fits:
            return os.fsencode(self.folder / name)
        if self._folder_fd is None:
            self._folder_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        return os.fsencode(f"{_PROC_FDS}/{self._folder_fd}/{name}")

    def listen(self, wake: Callable[[Wakeup], None]) -> Callable[[], None] | None:
        """Bind a socket of this store's and call ``wake`` with what it receives; the stop
        function it returns removes it. None where no socket can be bound."""
        try:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            name = f"{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}"
            with self._lock:
                address = self._address(name)
            listening = _Listening(self.folder / name, address, wake)
        except OSError as exc:
            log.debug("no wake-up socket in %s (%s); the worker polls", self.folder, exc)
            return None
        with self._lock:
            self._own[name] = listening

        def stop() -> None:
            with self._lock:
                self._own.pop(name, None)
            listening.stop()

        return stop

    def send(self, payloads: Sequence[str]) -> None:
        """Send each payload to every other listener, never waiting, never raising."""
        if not payloads:
            return
        try:
            targets = self._targets()
            if not targets:
                return
            with self._lock:
                if self._sender is None:
                    self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sender.setblocking(False)
                sender = self._sender
                failed = False
                for name in targets:
                    failed |= not self._send_to(sender, name, payloads)
                if failed:
                    self._listed_at = float("-inf")
        except OSError as exc:
            log.debug("could not send wake-ups to %s: %s", self.folder, exc)

    def _send_to(self, sender: socket.socket, name: str, payloads: Sequence[str]) -> bool:
        """Whether ``name`` still had a listener (a dead one's file is removed)."""
        address = self._address(name)
        for payload in payloads:
            try:
                sender.sendto(payload.encode(), address)
            except (ConnectionRefusedError, FileNotFoundError):
                with suppress(OSError):
                    os.unlink(self.folder / name)
                return False
            except BlockingIOError:
                return True  # woken already: it looks at everything pending
            except OSError as exc:
                log.debug("could not wake %s: %s", name, exc)
                return False
        return True

    def _targets(self) -> list[str]:
        """The other listeners' socket names. The folder is listed again when it changed
        (one ``stat`` per send that has something to say), when the last listing was
        taken so soon after a change that the file system's clock may not show the next,
        and at least every ``REFRESH`` seconds."""
        now = time.monotonic()
        with self._lock:
            try:
                mtime = os.stat(self.folder).st_mtime_ns
            except OSError:  # no folder yet: nobody listens
                return []
            if mtime != self._listed_mtime or self._unsettled or now - self._listed_at >= REFRESH:
                self._listed_at, self._listed_mtime = now, mtime
                self._unsettled = time.time_ns() - mtime < _SETTLED_NS
                try:
                    with os.scandir(self.folder) as entries:
                        self._listing = [e.name for e in entries if e.name.endswith(_SUFFIX)]
                except OSError:
                    self._listing = []
            return [name for name in self._listing if name not in self._own]

    def close(self) -> None:
        """Stop this store's listeners and close its sending socket."""
        with self._lock:
            own = list(self._own.values())
            self._own.clear()
            sender, self._sender = self._sender, None
        for listening in own:
            listening.stop()
        if sender is not None:
            sender.close()
        with self._lock:
            fd, self._folder_fd = self._folder_fd, None
        if fd is not None:
            os.close(fd)
