"""Fixtures shared by the end-to-end tests: a PostgreSQL database of their own (a fresh
schema, dropped after) that the keel processes a test starts share, as ``url``, and a
store on it for the test to look with, as ``store``. A module that runs its processes on
something else (a SQLite file) defines its own ``url`` or ``store``, which pytest uses
instead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keel.store.protocol import Store
from tests.postgres import fresh_url, open_postgres


@pytest.fixture
def url() -> Iterator[str]:
    address = fresh_url()
    store = open_postgres(address)  # creates the schema: every process finds it made
    store.close()
    yield address
    store.drop_schema()


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    opened = open_postgres(url)
    yield opened
    opened.close()
