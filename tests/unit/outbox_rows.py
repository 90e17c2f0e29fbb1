"""The outbox as the database holds it: tests read it directly (the store has no method
for it that only tests would call)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

from keel.store.records import OutboxItem
from keel.store.sqlite import SQLiteStore


def outbox(store: SQLiteStore, run_id: str) -> list[OutboxItem]:
    """The run's notifications, delivered or not, oldest first, read from the database."""
    query = ("SELECT id, run_id, notifier, payload, deliveries, delivered_at, error FROM outbox "
             "WHERE run_id = ? ORDER BY id")  # fmt: skip
    with closing(sqlite3.connect(store.path)) as conn:
        rows = conn.execute(query, (run_id,)).fetchall()
    return [
        OutboxItem(row_id, run, json.loads(notifier), json.loads(payload), count, at, error)
        for row_id, run, notifier, payload, count, at, error in rows
    ]
