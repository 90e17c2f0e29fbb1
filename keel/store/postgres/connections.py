"""The connections of one PostgreSQL store, and what happens when one is lost.

A connection can be cut at any moment: ``pg_terminate_backend``, a server restart, a
failover, the network. A long-lived worker must not die of it, so every public call of
the store goes through ``Connections.run`` (see ``keel.store.boundary``):

- A call whose connection broke before its transaction committed wrote nothing; it is
  run again from the start on another connection (at once, then with backoff).
- A write whose ``COMMIT`` was sent but whose answer was lost may or may not have
  committed. Its transaction id, read with the write's first statement (the lock of
  its run) or else just before ``COMMIT``, settles it: asked on a new
  connection (``pg_xact_status``), the server says committed (the call returns what it
  computed, which is what the database now holds) or aborted (the call runs again). A
  write is therefore never applied twice and never reported lost when it was applied.
- A lost connection is logged once per call, as one line; the pool's own warnings about
  the connections it discards are not shown (they would repeat that line).
- After ``reconnect_for`` seconds without success the call raises
  ``StoreUnavailableError``; the caller decides whether to wait longer (a worker does).
- Errors that report the server's state (disk full, read-only, damaged data) become
  ``StorageFaultError``. A deadlock or serialization failure that escapes a call rolled
  all of it back: it is run again too. Any other error of the server becomes a
  ``StoreError`` naming it; the store's own refusals (conflicts) pass through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from keel.errors import StorageFaultError, StoreError, StoreUnavailableError

log = logging.getLogger("keel.store.postgres")
T = TypeVar("T")

#: seconds a call keeps trying to reach the server before giving up
RECONNECT_FOR = 30.0
#: what the server's error codes mean for a person, and what to do
_FAULTS = {
    "53100": "the database server's disk is full: free space on it",
    "25006": "the database is read-only (a standby?): point the URL at the primary",
    "58030": "the database server cannot read or write its disk: check its disk",
    "XX001": "the database's data is damaged: restore it from a backup",
    "XX002": "an index of the database is damaged: REINDEX it",
}


class ConnectionLost(Exception):  # noqa: N818 - a signal inside the store, never raised out
    """The call's connection broke and nothing of it was committed: run it again."""


def storage_fault(exc: psycopg.Error, shown: str) -> StorageFaultError | None:
    what = _FAULTS.get(exc.sqlstate or "")
    if what is None:
        return None
    detail = exc.diag.message_primary or str(exc)
    return StorageFaultError(
        f"{shown}: {what} ({detail}); what was recorded is kept, and `keel resume` "
        "continues unfinished runs afterwards"
    )


def _reason(exc: BaseException) -> str:
    """The first line of a driver's message (libpq adds hints on further lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Connections:
    """A pool of connections to one schema, and the retry rules above."""

    def __init__(
        self,
        conninfo: str,
        kwargs: dict[str, Any],
        shown: str,
        *,
        name: str,
        min_size: int,
        max_size: int,
        reconnect_for: float = RECONNECT_FOR,
    ) -> None:
        self.conninfo, self.kwargs, self.shown = conninfo, kwargs, shown
        #: the transaction id a write's first statement read (``note_xid``), per thread
        self._noted = threading.local()
        self.reconnect_for = reconnect_for
        # the store says once that a connection was lost; the pool would say it again
        # for each connection it finds broken or fails to replace
        pool_log = logging.getLogger("psycopg.pool")
        if pool_log.level == logging.NOTSET:
            pool_log.setLevel(logging.ERROR)
        # the pool replaces lost connections in the background, backing off while the
        # server is down; giving up (and starting afresh on the next call) after
        # ``reconnect_for`` keeps it from sleeping long after the server is back
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            conninfo, min_size=min_size, max_size=max_size, kwargs=kwargs, name=name,
            timeout=min(10.0, reconnect_for), reconnect_timeout=reconnect_for, open=True,
        )  # fmt: skip

    def close(self) -> None:
        self.pool.close()

    def run(self, call: Callable[[], T]) -> T:
        """Run one call of the store, again after each lost connection (at once, then
        with backoff), for up to ``reconnect_for`` seconds. A deadlock or serialization
        failure that rolled the whole call back is retried the same way; any other error
        of the server becomes a ``StoreError`` naming it."""
        give_up: float | None = None
        delay = 0.0
        while True:
            try:
                return call()
            except ConnectionLost as lost:
                if give_up is None:
                    log.warning("lost the connection to %s (%s); reconnecting", self.shown, lost)
                    self.pool.check()  # drop the other connections the same cut broke
                failure = (
                    f"the database {self.shown} is unreachable ({lost}); tried for "
                    f"{self.reconnect_for:g} s: check that the server is running and "
                    "reachable, then try again"
                )
            except pg_errors.TransactionRollback as exc:
                log.info("a call gave way to another transaction (%s); trying again",
                         _reason(exc))  # fmt: skip
                failure = (
                    f"the database {self.shown} kept refusing a request for "
                    f"{self.reconnect_for:g} s ({_reason(exc)}): try again"
                )
            except psycopg.Error as exc:
                raise StoreError(
                    f"the database {self.shown} refused a request: {_reason(exc)} "
                    f"(SQLSTATE {exc.sqlstate})"
                ) from exc
            now = time.monotonic()
            if give_up is None:
                give_up = now + self.reconnect_for
            elif now >= give_up:
                raise StoreUnavailableError(failure) from None
            time.sleep(delay)
            delay = min(max(2 * delay, 0.05), 2.0)

    @contextmanager
    def session(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection from the pool; a broken one turns the error into
        ``ConnectionLost``, and a transaction left open is rolled back."""
        try:
            conn = self.pool.getconn()
        except PoolTimeout:
            raise ConnectionLost(f"no connection within {self.pool.timeout:g} s") from None
        try:
            yield conn
        except psycopg.Error as exc:
            if conn.broken:
                raise ConnectionLost(_reason(exc)) from None
            fault = storage_fault(exc, self.shown)
            if fault is not None:
                raise fault from None
            raise
        finally:
            if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                with suppress(psycopg.Error):
                    conn.rollback()
            self.pool.putconn(conn)

    @contextmanager
    def read(self) -> Iterator[psycopg.Cursor[Any]]:
        with self.session() as conn:
            with conn.cursor() as cur:
                yield cur
            conn.commit()

    @contextmanager
    def write(self) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction: committed when the block ends, rolled back if it raises.
        A lost answer to the ``COMMIT`` is settled by asking what became of it."""
        with self.session() as conn:
            self._noted.xid = None
            with conn.cursor() as cur:
                yield cur
                xid: str | None = self._noted.xid
                if xid is None:
                    row = cur.execute("SELECT pg_current_xact_id_if_assigned()::text").fetchone()
                    xid = row[0] if row else None
            try:
                conn.commit()
            except psycopg.Error as exc:
                if not conn.broken or xid is None:
                    raise  # refused, or nothing was written: nothing to settle
                if not self._committed(xid, _reason(exc)):
                    raise ConnectionLost(_reason(exc)) from None
                log.warning("lost the connection to %s (%s) after a commit went through",
                            self.shown, _reason(exc))  # fmt: skip

    def note_xid(self, xid: str) -> None:
        """The id of this thread's write transaction, read with its first statement:
        ``write`` then needs no round trip of its own to learn it before ``COMMIT``."""
        self._noted.xid = xid

    def _committed(self, xid: str, reason: str) -> bool:
        """Whether transaction ``xid`` committed, asked on a new connection as soon as
        the server answers and has finished with it."""
        give_up = time.monotonic() + self.reconnect_for
        delay = 0.05
        while True:
            try:
                with psycopg.connect(self.conninfo, autocommit=True, **self.kwargs) as conn:
                    row = conn.execute("SELECT pg_xact_status(%s::xid8)", (xid,)).fetchone()
                status = row[0] if row else None
                if status != "in progress":
                    return status == "committed"
            except pg_errors.InvalidParameterValue:
                return False  # "in the future": a server failed over to never saw it
            except psycopg.Error as exc:
                reason = _reason(exc)
            if time.monotonic() >= give_up:
                raise StoreUnavailableError(
                    f"lost the connection to {self.shown} while committing, and could not "
                    f"learn within {self.reconnect_for:g} s whether the commit went through "
                    f"({reason}): check the server, then try again"
                )
            time.sleep(delay)
            delay = min(2 * delay, 1.0)
