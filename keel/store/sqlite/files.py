"""Creating the database file: readable and writable by its user only.

Runs' inputs and outputs may be confidential, and the default umask leaves a new file
readable by everyone on the host. The file is created ``0600`` before SQLite opens it
(SQLite gives its -wal and -shm files the database file's permissions), and the folders
keel creates for it ``0700``. Files and folders that exist already are the user's: their
permissions are left as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

from keel.errors import StorageFaultError


def create_private(path: Path) -> None:
    """Create ``path`` (an empty file: SQLite takes it for an empty database) and the
    folders leading to it, for this user only, where they do not exist yet."""
    missing = []
    folder = path.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    try:
        for folder in reversed(missing):
            folder.mkdir(mode=0o700, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StorageFaultError(f"cannot create the database {path}: {exc.strerror}") from None
