"""The store's reads for metrics (``keel.store.gauges``): two named queries in one read
(what the store holds now, and the LLM ledger summed), read-only."""

from __future__ import annotations

from keel.store.boundary import store_boundary
from keel.store.gauges import StoreGauges, gauges_of
from keel.store.sqlstore.reads import SQLReader


@store_boundary
class SQLGauges(SQLReader):
    """Counts of what the store holds now, on a SQL database, through its ``Dialect``."""

    def gauges(self, now: float, live_since: float) -> StoreGauges:
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["store_gauges"],
                               {"now": now, "live_since": live_since}).fetchall()  # fmt: skip
            llm = cur.execute(self.q["llm_call_sums"]).fetchall()
        return gauges_of(rows, llm)
