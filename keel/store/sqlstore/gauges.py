"""The store's reads for metrics (``keel.store.gauges``): one named query, read-only."""

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
        return gauges_of(rows)
