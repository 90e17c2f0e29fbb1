"""A PostgreSQL store whose connections are cut: by ``pg_terminate_backend`` between
calls, and by a proxy that cuts a connection around a ``COMMIT``, before it reaches the
server or after the server committed but before its answer comes back (what a failover
or a network fault can do). Every call must still do exactly what it was asked, once:
a run moves on as if nothing happened, nothing is recorded twice, and each lost
connection is one line in the log. And the server's other errors leave the store as
``StoreError``s that say what happened: a read-only database, a schema dropped under it.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterator

import psycopg
import pytest

from keel.engine.events import NodeSucceeded
from keel.errors import StorageFaultError, StoreError
from keel.store.chain import verify_chain
from tests.contract.conftest import Driver, three_node_spec
from tests.pgproxy import Proxy
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


@pytest.fixture
def cutter() -> Iterator[tuple[PostgresStore, Proxy]]:
    proxy = Proxy()
    store = open_postgres(proxy.url())
    yield store, proxy
    store.drop_schema()
    store.close()
    proxy.close()


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_commit_cut_off_is_applied_exactly_once_and_reported_as_it_went(
    cutter: tuple[PostgresStore, Proxy], when: str, caplog: pytest.LogCaptureFixture
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


def test_a_store_opened_while_its_connection_is_cut_opens_all_the_same() -> None:
    """A worker starting during a failover: the connection that opens the store is cut
    by the server's side; the store tries again instead of the worker exiting."""
    url = fresh_url()
    proxy = Proxy()
    proxy.arm("before", on=b"pg_namespace")  # the first thing a store asks
    try:
        store = PostgresStore(proxy.url(url), upgrade=True)
    finally:
        proxy.close()
    try:
        assert proxy.cuts == 1
        assert store.schema_version() > 0
    finally:
        store.drop_schema()
        store.close()


def test_a_wrong_address_fails_at_once_naming_it() -> None:
    with pytest.raises(
        StoreError, match=re.escape("cannot connect to postgresql://postgres@127.0.0.1:1/")
    ):
        PostgresStore("postgresql://postgres@127.0.0.1:1/test", reconnect_for=600)


def test_a_read_only_database_is_a_storage_fault_that_names_it() -> None:
    url = fresh_url()
    writable = open_postgres(url)
    try:
        Driver(writable, three_node_spec(), "run-1").start()
        read_only = PostgresStore(f"{url}&options=-c%20default_transaction_read_only%3Don")
        try:
            with pytest.raises(StorageFaultError, match=r"127\.0\.0\.1.*is read-only"):
                Driver(read_only, three_node_spec(), "run-2").start()
            assert read_only.get_run("run-1") == writable.get_run("run-1")  # still readable
        finally:
            read_only.close()
    finally:
        writable.drop_schema()
        writable.close()


def test_a_schema_dropped_under_a_store_is_a_store_error_naming_the_cause() -> None:
    store = open_postgres()
    try:
        store.drop_schema()
        with pytest.raises(StoreError, match=r"refused a request: .*SQLSTATE 42P01"):
            store.get_run("run-1")
    finally:
        store.close()
