"""Fixtures the unit tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.store.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """An embedded store in the test's own folder."""
    opened = SQLiteStore(tmp_path / "keel.db")
    yield opened
    opened.close()
