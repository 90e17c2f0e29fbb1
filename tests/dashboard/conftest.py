"""The dashboard over the server tests' seeded store (``tests.server.conftest``): a
browser-like client per role, signed in through the sign-in form as a person would."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from keel.server import create_app
from keel.store.sqlite import SQLiteStore
from tests.server.serverflows import ROLES, Seeded, seed

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: TestClient, token: str) -> None:
    form = client.get("/ui/sign-in")
    assert form.status_code == 200
    answer = client.post("/ui/sign-in", data={"token": token, "csrf": csrf_of(form.text),
                                              "next": "/ui/"}, follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303, answer.text
    assert "keel_session" in client.cookies


@dataclass
class Ui:
    store: SQLiteStore
    seeded: Seeded
    #: a signed-in client per role, and ``anonymous`` signed in as nobody
    clients: dict[str, TestClient]

    def csrf(self, role: str) -> str:
        """The CSRF token of ``role``'s session (from any page's sign-out form)."""
        return csrf_of(self.clients[role].get("/ui/runs").text)


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[Ui]:
    store = SQLiteStore(tmp_path / "keel.db")
    seeded = seed(store)
    app = create_app(store, rate=0)
    clients: dict[str, TestClient] = {}
    try:
        for role in (*ROLES, "anonymous"):
            client = TestClient(app, follow_redirects=False)
            client.__enter__()
            clients[role] = client
            if role != "anonymous":
                sign_in(client, seeded.tokens[role])
        yield Ui(store, seeded, clients)
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)
        store.close()
