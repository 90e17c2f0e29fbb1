"""SQLite's errors as keel's: one line that says what happened to which file and what
to do, as a ``StoreError`` subclass (see ``keel.store.boundary``).

SQLite reports the cause as a result code (``sqlite_errorcode``; its low byte is the
primary code): the file is read-only, the disk is full, another process holds the lock,
the disk failed, the file is damaged or cannot be opened. A transaction that fails for
any of these is rolled back, so what was committed before stays as it was.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from keel.errors import StorageFaultError, StoreError, StoreUnavailableError

# primary result codes (https://sqlite.org/rescode.html)
PERM, BUSY, LOCKED, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB = (
    3,
    5,
    6,
    8,
    10,
    11,
    13,
    14,
    26,
)
#: what to do after a fault stopped a run (it continues where it stopped)
_THEN = "then `keel resume` continues unfinished runs"


def primary_code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_busy(exc: sqlite3.Error) -> bool:
    """Another connection holds the lock this one needs (waiting may help)."""
    return primary_code(exc) in (BUSY, LOCKED)


def store_error(exc: sqlite3.Error, path: Path) -> StoreError:
    """The ``StoreError`` that tells a person what ``exc`` means for the file ``path``."""
    code = primary_code(exc)
    if code == READONLY:
        return StorageFaultError(
            f"{path} is read-only ({exc}): make the file and its folder writable, {_THEN}"
        )
    if code == FULL:
        return StorageFaultError(
            f"{path}: the disk is full ({exc}); what was recorded is kept: free some space, {_THEN}"
        )
    if code in (BUSY, LOCKED):
        return StoreUnavailableError(
            f"{path} is locked by another process ({exc}): wait for it to finish or stop "
            "it, then try again"
        )
    if code == IOERR:
        return StorageFaultError(
            f"{path}: the disk failed to read or write ({exc}): check the disk and its "
            f"file system, {_THEN}"
        )
    if code in (CORRUPT, NOTADB):
        return StorageFaultError(
            f"{path} is damaged or not a keel database ({exc}): restore it from a backup "
            "(`keel verify --all` checks the runs it holds)"
        )
    if code in (CANTOPEN, PERM):
        return StorageFaultError(
            f"cannot open {path} ({exc}): check that its folder exists and that this "
            "user may read and write there"
        )
    return StoreError(f"{path}: {exc}")
