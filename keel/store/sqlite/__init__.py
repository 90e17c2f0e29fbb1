"""The embedded SQLite store (the default: a file under ``.keel/``)."""

from keel.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
