"""The schedules' table: paused or not, and the newest slot fired (see
``keel.store.schedules``). One row per schedule name, made by whichever write comes
first (a worker's advance or someone's pause)."""

from __future__ import annotations

from keel.store.boundary import store_boundary
from keel.store.schedules import ScheduleState, schedule_of
from keel.store.sqlstore.transitions import SQLWriter


@store_boundary
class SQLSchedules(SQLWriter):
    """Schedule state on a SQL database, through its ``Dialect``."""

    def schedules(self) -> list[ScheduleState]:
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["select_schedules"]).fetchall()
        return [schedule_of(row) for row in rows]

    def pause_schedule(
        self, name: str, workflow: str, paused: bool, at: float, by: str | None = None
    ) -> None:
        with self.dialect.write() as cur:
            cur.execute(self.q["pause_schedule"],
                        (name, workflow, paused, by if paused else None,
                         at if paused else None))  # fmt: skip

    def advance_schedule(self, name: str, workflow: str, slot: float) -> None:
        with self.dialect.write() as cur:
            cur.execute(self.q["advance_schedule"], (name, workflow, slot))
