"""A PostgreSQL store whose connections are cut: by ``pg_terminate_backend`` between
calls, and by a proxy that cuts a connection around a ``COMMIT``, before it reaches the
server or after the server committed but before its answer comes back (what a failover
or a network fault can do). Every call must still do exactly what it was asked, once:
a run moves on as if nothing happened, nothing is recorded twice, and each lost
connection is one line in the log.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import suppress
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from keel.engine.events import NodeSucceeded
from keel.store.chain import verify_chain
from tests.contract.conftest import Driver, three_node_spec
from tests.postgres import URL, PostgresStore, fresh_url, open_postgres

LOST = "lost the connection to"


def terminate(tag: str) -> int:
    """Terminate the backends whose application_name is ``tag``; how many there were."""
    with psycopg.connect(URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (tag,),
        ).fetchone()
    return int(row[0]) if row else 0


def lost_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if LOST in r.getMessage()]


@pytest.fixture
def tagged() -> Iterator[tuple[PostgresStore, str]]:
    """A store whose connections carry a name of their own, to terminate them by."""
    tag = f"kt{secrets.token_hex(4)}"
    store = open_postgres(f"{fresh_url()}&application_name={tag}")
    yield store, tag
    store.drop_schema()
    store.close()


def test_a_store_survives_its_connections_being_terminated_between_calls(
    tagged: tuple[PostgresStore, str], caplog: pytest.LogCaptureFixture
) -> None:
    store, tag = tagged
    caplog.set_level(logging.WARNING, logger="keel.store.postgres")
    driver = Driver(store, three_node_spec(), "run-1", {"n": 2})
    cuts = 0

    def cut() -> None:
        nonlocal cuts
        assert terminate(tag) >= 1, "the store holds a connection between calls"
        cuts += 1

    cut()
    driver.start()
    cut()
    (a,) = driver.claim("w1")
    cut()
    driver.succeed(a.lease, "A")
    cut()
    b, c = sorted(driver.claim("w2"), key=lambda claimed: claimed.lease.node)
    cut()
    driver.succeed(b.lease, "B")
    cut()
    driver.succeed(c.lease, "C")
    cut()

    record = store.get_run("run-1")
    assert record.status == "succeeded"
    assert record.output == {"b": "B", "c": "C"}
    links = store.chain_links("run-1")
    assert verify_chain("run-1", links, record.last_seq, record.head_hash).intact
    assert len(lost_lines(caplog)) == cuts  # one line each, the next call that noticed
    assert not [r for r in caplog.records if r.exc_info]


class CommitCutter:
    """A TCP proxy to the test server that, when armed, cuts the next connection that
    sends a ``COMMIT``: before passing it on (``"before"``: nothing was committed), or
    after the server answered it (``"after"``: committed, but the client never hears)."""

    def __init__(self) -> None:
        parts = urlsplit(URL)
        self.server = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.when: str | None = None
        self.cuts = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self) -> str:
        """``fresh_url`` through this proxy, in clear text (so a COMMIT can be seen)."""
        parts = urlsplit(fresh_url())
        netloc = f"{parts.username or 'postgres'}@127.0.0.1:{self.port}"
        query = f"{parts.query}&sslmode=disable&gssencmode=disable"
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))

    def arm(self, when: str) -> None:
        self.when = when

    def close(self) -> None:
        self.listener.close()

    def _take(self) -> str | None:
        with self._lock:
            when, self.when = self.when, None
            if when is not None:
                self.cuts += 1
            return when

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.server)
            state: dict[str, bool] = {"cut_on_answer": False}
            threading.Thread(target=self._up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, state), daemon=True).start()

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _up(self, client: socket.socket, server: socket.socket, state: dict[str, bool]) -> None:
        try:
            while data := client.recv(65536):
                when = self._take() if b"COMMIT\x00" in data and self.when else None
                if when == "before":
                    self._close(client, server)
                    return
                state["cut_on_answer"] = when == "after"
                server.sendall(data)
        except OSError:
            pass
        self._close(client, server)

    def _down(self, server: socket.socket, client: socket.socket, state: dict[str, bool]) -> None:
        try:
            while data := server.recv(65536):
                if state["cut_on_answer"]:  # the server committed; its answer is dropped
                    break
                client.sendall(data)
        except OSError:
            pass
        self._close(client, server)


@pytest.fixture
def cutter() -> Iterator[tuple[PostgresStore, CommitCutter]]:
    proxy = CommitCutter()
    store = open_postgres(proxy.url())
    yield store, proxy
    store.drop_schema()
    store.close()
    proxy.close()


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_commit_cut_off_is_applied_exactly_once_and_reported_as_it_went(
    cutter: tuple[PostgresStore, CommitCutter], when: str, caplog: pytest.LogCaptureFixture
) -> None:
    store, proxy = cutter
    caplog.set_level(logging.WARNING, logger="keel.store.postgres")
    driver = Driver(store, three_node_spec(), "run-1", {"n": 2})
    driver.start()
    (a,) = driver.claim("w1")

    event = NodeSucceeded(node="a", attempt=a.lease.attempt, output="A")
    transition = driver.step([event], (a.lease,))

    proxy.arm(when)  # the next COMMIT is this transition's
    committed = driver.commit(transition)  # raises if the store reports it refused

    assert proxy.cuts == 1
    assert [e.event.node for e in committed.events if isinstance(e.event, NodeSucceeded)] == ["a"]
    history = store.history("run-1")
    assert [e.seq for e in history] == list(range(1, len(history) + 1))
    assert [e.event.node for e in history if isinstance(e.event, NodeSucceeded)] == ["a"]
    assert store.leases("run-1") == []
    assert {claimed.lease.node for claimed in driver.claim("w2")} == {"b", "c"}
    lost = lost_lines(caplog)
    assert len(lost) == 1, lost
    assert ("after a commit went through" in lost[0]) == (when == "after")
