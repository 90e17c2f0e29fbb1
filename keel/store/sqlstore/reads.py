"""The reading half of the store skeleton: runs, histories, leases, waits, timers, workers.

Every read goes through the dialect's ``read`` (no write lock) and a named query; rows
become records with ``keel.store.records``. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from keel.errors import NO_RUN, RunNotFoundError, StoreError
from keel.spec.model import WorkflowSpec
from keel.store.blobs import BLOB_THRESHOLD, column_name, names_in
from keel.store.boundary import store_boundary
from keel.store.chain import ChainLink
from keel.store.presence import WorkerRecord, worker_of
from keel.store.records import (
    CircuitState,
    Lease,
    QueuedAttempt,
    RunRecord,
    StoredEvent,
    Timer,
    Wait,
    lease_of,
    queued_attempt_of,
    run_record,
    spec_from_row,
    stored_event_of,
    timer_of,
    wait_of,
)
from keel.store.sqlstore.dialect import Cursor, Dialect

T = TypeVar("T")


@store_boundary
class SQLReader:
    """Reads of a store on ``dialect``."""

    #: values whose canonical JSON is longer (characters) are stored once as blobs
    #: (``keel.store.blobs``); a setting of the store object, which tests make small
    blob_threshold: int = BLOB_THRESHOLD

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.q = dialect.queries
        #: the migrations applied when the store was opened (``NNNN_name``)
        self._applied: list[str] = []
        #: definitions this store object saw committed: a run of one is not preceded
        #: by writing it again (the spec is most of a new run's bytes)
        self._stored_specs: set[str] = set()

    def _at_boundary(self, call: Callable[[], T]) -> T:
        return self.dialect.at_boundary(call)

    def migrations_applied(self) -> list[str]:
        return list(self._applied)

    def schema_version(self) -> int:
        with self.dialect.read() as cur:
            row = cur.execute(self.q["schema_version"]).fetchone()
        return int(row[0] or 0) if row else 0

    def load_spec(self, version: str) -> WorkflowSpec:
        with self.dialect.read() as cur:
            row = cur.execute(self.q["select_spec"], (version,)).fetchone()
        if row is None:
            raise StoreError(f"no workflow definition with version {version} is stored")
        spec: WorkflowSpec = spec_from_row(version, row[0])
        return spec

    # --- runs and their histories ------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord:
        q = self.q
        with self.dialect.read() as cur:
            row = cur.execute(q["select_run"], (run_id,)).fetchone()
            if row is None and run_id:
                matches = cur.execute(
                    q["select_run_prefix"], (run_id, run_id + "\uffff")
                ).fetchall()
                if len(matches) > 1:
                    raise RunNotFoundError(f"'{run_id}' matches several runs: give more characters")
                if matches:
                    row = cur.execute(q["select_run"], (matches[0][0],)).fetchone()
            blobs = {} if row is None else self._column_blobs(cur, [row])
        if row is None:
            raise RunNotFoundError(f"{NO_RUN} '{run_id}'")
        return run_record(row, blobs)

    def history(
        self, run_id: str, after_seq: int = 0, before_seq: int | None = None
    ) -> list[StoredEvent]:
        with self.dialect.read() as cur:
            if before_seq is None:
                rows = cur.execute(self.q["select_history"], (run_id, after_seq)).fetchall()
            else:
                page = (run_id, after_seq, before_seq)
                rows = cur.execute(self.q["select_history_before"], page).fetchall()
            blobs = self._blob_texts(cur, names_in(row[3] for row in rows))
        return [stored_event_of(row, blobs) for row in rows]

    def first_event(self, run_id: str) -> StoredEvent | None:
        with self.dialect.read() as cur:
            row = cur.execute(self.q["select_first_event"], (run_id,)).fetchone()
            blobs = {} if row is None else self._blob_texts(cur, names_in([row[3]]))
        return None if row is None else stored_event_of(row, blobs)

    def chain_links(self, run_id: str) -> list[ChainLink]:
        """The stored events exactly as written, for ``verify_chain``."""
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["select_chain"], (run_id,)).fetchall()
        return [ChainLink(*row) for row in rows]

    def blobs(self, names: Iterable[str]) -> dict[str, str]:
        """The stored text of each of these blobs that the store holds, by name."""
        with self.dialect.read() as cur:
            return self._blob_texts(cur, set(names))

    def _blob_texts(self, cur: Cursor, names: set[str]) -> dict[str, str]:
        if not names:
            return {}
        rows = cur.execute(self.q["select_blobs"], (self.dialect.array(sorted(names)),))
        return {str(name): str(text) for name, text in rows}

    def _column_blobs(self, cur: Cursor, rows: Sequence[Sequence[Any]]) -> dict[str, str]:
        """The blobs that runs' ``input`` and ``output`` columns (``select_run``'s
        fifth and sixth) name, for ``run_record``."""
        names = {name for row in rows for text in (row[4], row[5])
                 if (name := column_name(text)) is not None}  # fmt: skip
        return self._blob_texts(cur, names)

    # --- the ready queue, circuits, waits and timers ---------------------------------------

    def lease_owners(self) -> list[str]:
        with self.dialect.read() as cur:
            return [row[0] for row in cur.execute(self.q["select_owners"])]

    def leases(self, run_id: str) -> list[Lease]:
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["select_leases_of_run"], (run_id,)).fetchall()
        return [lease_of(row) for row in rows]

    def ready_count(self, run_id: str) -> int:
        with self.dialect.read() as cur:
            row = cur.execute(self.q["count_ready_of_run"], (run_id,)).fetchone()
        return int(row[0]) if row else 0

    def ready_attempts(self, run_id: str, limit: int = 1000) -> list[QueuedAttempt]:
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["select_ready_of_run"], (run_id, limit)).fetchall()
        return [queued_attempt_of(row) for row in rows]

    def limit_holders(self, key: str) -> list[Lease]:
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["select_limit_holders"], (key,)).fetchall()
        return [lease_of(row) for row in rows]

    def rate_starts(self, key: str, since: float) -> list[float]:
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["select_rate_starts"], (key, since)).fetchall()
        return [float(at) for (at,) in rows]

    def circuits(self) -> list[CircuitState]:
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["select_circuits"]).fetchall()
        return [CircuitState(*row) for row in rows]

    def waits(
        self, *, waits_for: str | None = None, run_id: str | None = None, limit: int = 1000
    ) -> list[Wait]:
        params = {"kind": waits_for, "run": run_id, "limit": limit}
        query = self.q["select_waits" if run_id is None else "select_waits_of_run"]
        with self.dialect.read() as cur:
            rows = cur.execute(query, params).fetchall()
        return [wait_of(row) for row in rows]

    def due_timers(self, now: float, limit: int) -> list[Timer]:
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["select_due_timers"], (now, limit)).fetchall()
        return [timer_of(row) for row in rows]

    def next_timer_at(self) -> float | None:
        with self.dialect.read() as cur:
            row = cur.execute(self.q["select_next_timer"]).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def live_workers(self, seen_since: float) -> list[WorkerRecord]:
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["select_live_workers"], (seen_since,)).fetchall()
        return [worker_of(row) for row in rows]
