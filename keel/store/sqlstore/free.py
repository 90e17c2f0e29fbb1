"""The free attempts of one claim, read with a dialect's named queries (``FreeQueue``).

``choose`` (``keel.store.limits``) decides what a claim takes; this is how it reads the
queue: the ``free`` queries in the claim's run scope (each scope its own query, so each
keeps its index), the circuits tripped among them, and the counts of limit keys, taken
under the dialect's key locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keel.store.limits import RATE_SLACK, Candidate, rate_free_at
from keel.store.sqlstore.dialect import Cursor, Dialect


class SQLFree:
    """Free attempts in a scope (some runs, some queues) at ``now``, at most ``limit``."""

    def __init__(
        self,
        dialect: Dialect,
        cur: Cursor,
        now: float,
        limit: int,
        run_ids: Sequence[str] | None,
        queues: Sequence[str] | None,
        lease_for: float,
    ) -> None:
        self.dialect, self.cur, self.q = dialect, cur, dialect.queries
        self.now, self.limit, self.lease_for = now, limit, lease_for
        queued = None if queues is None else dialect.array(queues)
        self.scope: dict[str, Any] = {"now": now, "queues": queued}
        scope = ""
        if run_ids is not None and len(run_ids) == 1:
            scope, self.scope["run"] = "_of_run", run_ids[0]
        elif run_ids is not None:
            scope, self.scope["runs"] = "_of_runs", dialect.array(run_ids)
        self._free, self._rates = self.q["free" + scope], self.q["waiting_rates" + scope]

    def look(self, full_limits: Sequence[str], full_rates: Sequence[str]) -> list[Candidate]:
        array = self.dialect.array
        params = {**self.scope, "limit": self.limit,
                  "full_limits": array(full_limits) if full_limits else None,
                  "full_rates": array(full_rates) if full_rates else None}  # fmt: skip
        return [Candidate(*row) for row in self.cur.execute(self._free, params)]

    def tripped(self, circuits: Sequence[str]) -> tuple[set[str], set[str]]:
        found = self.cur.execute(self.q["select_tripped"], (self.dialect.array(circuits),))
        rows = found.fetchall()
        probed = {name for name, probe_until in rows if (probe_until or 0) > self.now}
        return {name for name, _ in rows} - probed, probed

    def start_probe(self, circuit: str) -> None:
        self.cur.execute(self.q["start_probe"], (self.now + self.lease_for, self.now, circuit))

    def lock(self, name: str) -> None:
        self.dialect.lock_key(self.cur, name)

    def holders(self, key: str) -> int:
        row = self.cur.execute(self.q["count_limit_holders"], (key,)).fetchone()
        return int(row[0]) if row else 0

    def recent_starts(self, key: str, since: float) -> list[float]:
        self.cur.execute(self.q["forget_rate_starts"], (key, since - RATE_SLACK))
        return self.starts(key, since)

    def starts(self, key: str, since: float) -> list[float]:
        """Start times with the rate key ``key`` after ``since``, oldest first (read only)."""
        return [float(at) for (at,) in self.cur.execute(self.q["select_rate_starts"], (key, since))]

    def record_start(self, key: str) -> None:
        self.cur.execute(self.q["insert_rate_start"], (key, self.now))

    def waiting_rates(self) -> list[tuple[str, int, float]]:
        rows = self.cur.execute(self._rates, self.scope)
        return [(str(key), int(n), float(per)) for key, n, per in rows]

    def retry_at(self) -> float | None:
        """When an attempt held back by a rate limit could go (None: none is), read only:
        for a claim that found nothing free and takes no write lock."""
        retry_at: float | None = None
        for key, rate_max, per in self.waiting_rates():
            free_at = rate_free_at(self.starts(key, self.now - per), rate_max, per)
            if free_at is not None and (retry_at is None or free_at < retry_at):
                retry_at = free_at
        return retry_at
