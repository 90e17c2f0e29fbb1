"""Alerts on a SQL database (see ``keel.store.alerts``): the reads rules compare, each
one aggregate from an index (late runs and queue ages are the gauges'); the lease of the
one process that evaluates; the rules' states and their notifications, written together
under that lease."""

from __future__ import annotations

import json
from collections.abc import Sequence

from keel.store.alerts import (
    AlertNotice,
    AlertState,
    EndedRuns,
    alert_of,
    alert_row,
    quantile_offset,
)
from keel.store.boundary import store_boundary
from keel.store.chain import canonical_json
from keel.store.records import OutboxItem
from keel.store.sqlstore.reads import SQLReader


@store_boundary
class SQLAlerts(SQLReader):
    """What alerts need from a SQL database, through its ``Dialect``."""

    # --- the values rules compare ----------------------------------------------------------

    def ended_runs(
        self,
        since: float,
        *,
        workflow: str | None = None,
        quantile: float | None = None,
        quantiles: Sequence[float] = (),
    ) -> EndedRuns:
        params = {"since": since, "workflow": workflow}
        asked = ([] if quantile is None else [quantile]) + list(quantiles)
        with self.dialect.read() as cur:
            count, failed = cur.execute(self.q["ended_runs"], params).fetchone()
            at: dict[int, float] = {}
            places = [quantile_offset(int(count), q) for q in asked] if count else []
            if places:  # one sort of the ended runs, whatever the quantiles
                place = {**params, "places": self.dialect.array(sorted(set(places)))}
                rows = cur.execute(self.q["ended_run_durations"], place).fetchall()
                at = {int(row[0]): float(row[1]) for row in rows}
        durations = [at.get(p) for p in places] if places else [None for _ in asked]
        duration = durations.pop(0) if quantile is not None else None
        return EndedRuns(int(count), int(failed or 0), duration, tuple(durations))

    def overdue_approvals(self, now: float) -> int:
        with self.dialect.read() as cur:
            return int(cur.execute(self.q["overdue_approvals"], (now,)).fetchone()[0])

    # --- the lease, the states and their notifications -----------------------------------

    def hold_alert_lease(self, owner: str, now: float, lease_for: float) -> bool:
        params = {"owner": owner, "until": now + lease_for, "now": now}
        with self.dialect.write() as cur:
            return cur.execute(self.q["hold_alert_lease"], params).rowcount == 1

    def release_alert_lease(self, owner: str) -> None:
        with self.dialect.write() as cur:
            cur.execute(self.q["release_alert_lease"], (owner,))

    def alert_states(self) -> list[AlertState]:
        with self.dialect.read() as cur:
            return [alert_of(row) for row in cur.execute(self.q["select_alerts"]).fetchall()]

    def record_alerts(
        self,
        owner: str,
        now: float,
        states: Sequence[AlertState],
        notices: Sequence[AlertNotice],
        *,
        forget: Sequence[str] = (),
    ) -> bool:
        q = self.q
        with self.dialect.write() as cur:
            if cur.execute(q["alert_lease_held"], (owner, now)).fetchone() is None:
                return False  # another process evaluates now: its states stand
            for name in forget:
                cur.execute(q["delete_alert"], (name,))
            if states:
                cur.executemany(q["upsert_alert"], [alert_row(state) for state in states])
            if notices:
                cur.executemany(
                    q["insert_alert_notice"],
                    [(n.alert, canonical_json(n.notifier), canonical_json(n.payload), now, now)
                     for n in notices],
                )  # fmt: skip
        return True

    def take_alert_notices(self, now: float, limit: int) -> list[OutboxItem]:
        with self.dialect.write() as cur:
            rows = cur.execute(
                self.q["take_alert_notices"], {"now": now, "limit": limit}
            ).fetchall()
        rows.sort(key=lambda row: (row[4], row[0]))  # due first, then oldest
        return [OutboxItem(row_id, "", json.loads(notifier), json.loads(payload), deliveries)
                for row_id, notifier, payload, deliveries, _ in rows]  # fmt: skip

    def finish_alert_notice(
        self, item_id: int, now: float, *, error: str | None = None, retry_at: float | None = None
    ) -> None:
        with self.dialect.write() as cur:
            if error is None:
                cur.execute(self.q["alert_notice_delivered"], (now, item_id))
            else:
                cur.execute(self.q["alert_notice_failed"], (retry_at, error, item_id))
