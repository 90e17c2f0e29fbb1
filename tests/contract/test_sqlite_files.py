"""The embedded database holds runs' inputs and outputs, which may be confidential: the
file (and its -wal and -shm companions) and the folders keel creates for it are the
user's alone. A file or folder that exists already keeps the permissions its owner gave."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.store.sqlite import SQLiteStore
from tests.contract.conftest import Driver, make_spec


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The usual umask, which leaves new files readable by everyone."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_database_and_its_new_folders_are_private(tmp_path: Path) -> None:
    path = tmp_path / "project" / ".keel" / "keel.db"
    before = mode(tmp_path)
    store = SQLiteStore(path)
    try:
        Driver(store, make_spec()).start()  # writes: the -wal and -shm files exist now
        assert mode(path) == 0o600
        for companion in ("-wal", "-shm"):
            assert mode(path.with_name(path.name + companion)) == 0o600, companion
        assert mode(path.parent) == 0o700
        assert mode(path.parent.parent) == 0o700
    finally:
        store.close()
    assert mode(tmp_path) == before  # it existed: not keel's to change


def test_existing_files_and_folders_keep_their_permissions(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    path = folder / "keel.db"
    SQLiteStore(path).close()
    path.chmod(0o640)

    SQLiteStore(path).close()

    assert mode(path) == 0o640
    assert mode(folder) == 0o755
