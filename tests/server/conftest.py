"""An API over a fresh SQLite store: the ``review`` workflow deployed, a token per role,
a run waiting at its approval, a run that failed (its approval was rejected) and a
paused run.

The HTTP client is Starlette's TestClient: the app and its routes run for real, in this
process (the end-to-end tests run ``keel serve`` itself)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from keel.server import create_app
from keel.store.sqlite import SQLiteStore
from tests.server.serverflows import seed


@dataclass
class Api:
    client: TestClient
    store: SQLiteStore
    #: a token per role (the approver's is in the group ``finance``)
    tokens: dict[str, str]
    waiting: str
    failed: str
    paused: str

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def checkpoint(self) -> int:
        """A signed checkpoint's id (one signed here, with a key of its own, if none is)."""
        from keel.audit.checkpoints import make_checkpoint
        from keel.audit.signing import SigningKey

        found = self.store.checkpoints(limit=1)
        if found:
            return found[0].id
        made = make_checkpoint(self.store, SigningKey.generate(), at=1.0, by="tests")
        assert made.id is not None
        return made.id


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    store = SQLiteStore(tmp_path / "keel.db")
    seeded = seed(store)
    tokens, waiting, failed, paused = (seeded.tokens, seeded.waiting, seeded.failed,
                                       seeded.paused)  # fmt: skip
    with TestClient(create_app(store, rate=0)) as client:
        yield Api(client, store, tokens, waiting, failed, paused)
    store.close()
