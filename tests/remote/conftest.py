"""A real keel server for the remote client and CLI: the API under uvicorn on a free
port, in a thread of this process, over a fresh SQLite store (the ``review`` workflow
deployed, a token per role, a run waiting at its approval, a failed run, a paused run).

Nothing is mocked: requests go through TCP, the server's routes and the store."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from keel.server import create_app
from keel.store.sqlite import SQLiteStore
from tests.server.serverflows import seed


@dataclass
class Served:
    url: str
    db: Path
    store: SQLiteStore
    #: a token per role; each token is named ``ROLE-1`` (the approver's is in ``finance``)
    tokens: dict[str, str]
    waiting: str
    failed: str
    paused: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    db = tmp_path / "keel.db"
    store = SQLiteStore(db)
    seeded = seed(store)
    tokens, waiting, failed, paused = (seeded.tokens, seeded.waiting, seeded.failed,
                                       seeded.paused)  # fmt: skip
    try:
        with serving(store) as url:
            yield Served(url, db, store, tokens, waiting, failed, paused)
    finally:
        store.close()


@contextmanager
def serving(store: SQLiteStore, **tls: str) -> Iterator[str]:
    """The API over ``store`` on a free port until the block ends; its URL. ``tls``:
    ``ssl_certfile`` and ``ssl_keyfile`` for HTTPS."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(store, rate=0), log_level="warning", access_log=False,
                            **tls)  # type: ignore[arg-type]  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    ready = threading.Event()
    while not server.started and thread.is_alive():
        ready.wait(0.01)
    assert server.started, "the server did not start"
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()
