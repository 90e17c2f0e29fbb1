"""Who holds a lease: ``host:pid:start:token``, and whether that holder is known dead.

A lease names its holder's host, process id and process start time, so a process on the
same host can tell a dead holder (no such process, a zombie, or the pid reused by a
newer process) and take its work back at once instead of waiting for the lease to
expire. Holders on other hosts are only ever judged by lease expiry.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (empty where /proc is missing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat.rsplit(")", 1)[1].split()


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc is missing)."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


def _zombie(pid: int) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] == "Z"


@dataclass(frozen=True, slots=True)
class Owner:
    host: str
    pid: int
    start: str
    token: str

    @classmethod
    def for_this_process(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, process_start(pid), secrets.token_hex(3))

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        parts = text.rsplit(":", 3)
        if len(parts) != 4 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2], parts[3])

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.start}:{self.token}"


def known_dead(owner_text: str) -> bool:
    """True only when the holder is on this host and its process is gone."""
    owner = Owner.parse(owner_text)
    if owner is None or owner.host != socket.gethostname():
        return False
    if owner.pid == os.getpid():
        return False
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    if _zombie(owner.pid):
        return True
    return bool(owner.start) and process_start(owner.pid) not in ("", owner.start)
