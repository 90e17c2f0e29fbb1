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

from keel.authoring.yaml_source import load_yaml_text
from keel.runtime.operations.control import start_run
from keel.runtime.operations.interventions import pause_run, reject
from keel.server import create_app
from keel.server.identities import create_token
from keel.store.sqlite import SQLiteStore
from tests.server.serverflows import REVIEW_YAML

ROLES = ("viewer", "approver", "operator", "admin")


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


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    store = SQLiteStore(tmp_path / "keel.db")
    (spec,) = load_yaml_text(REVIEW_YAML, "review.yaml")
    store.deploy([(spec, "review.yaml")], 1.0, by="setup")
    tokens = {
        role: create_token(store, f"{role}-1", role,
                           groups=("finance",) if role == "approver" else ())[0]
        for role in ROLES
    }  # fmt: skip
    waiting = start_run(store, spec, {"amount": 10}).id
    failed = start_run(store, spec, {"amount": 20}).id
    reject(store, failed, "check", by="setup")
    assert store.get_run(failed).status == "failed"
    paused = pause_run(store, start_run(store, spec, {}).id, by="setup").id
    with TestClient(create_app(store, rate=0)) as client:
        yield Api(client, store, tokens, waiting, failed, paused)
    store.close()
