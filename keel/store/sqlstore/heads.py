"""Signed checkpoints on a SQL database (see ``keel.store.heads``): the runs' heads
read from the runs table, checkpoints kept as given, and the public keys that signed."""

from __future__ import annotations

import json

from keel.store.boundary import store_boundary
from keel.store.chain import canonical_json
from keel.store.heads import (
    AuditKey,
    CheckpointSummary,
    RunHead,
    StoredCheckpoint,
    pack_heads,
    unpack_heads,
)
from keel.store.sqlstore.dialect import Cursor
from keel.store.sqlstore.reads import SQLReader


@store_boundary
class SQLHeads(SQLReader):
    """What checkpoints need from a SQL database, through its ``Dialect``."""

    def run_heads(self, workflow: str | None = None) -> list[RunHead]:
        with self.dialect.read() as cur:
            if workflow is None:
                rows = cur.execute(self.q["select_run_heads"]).fetchall()
            else:
                rows = cur.execute(self.q["select_run_heads_of_workflow"], (workflow,)).fetchall()
        return [RunHead(str(run_id), int(seq), str(head)) for run_id, seq, head in rows]

    def add_checkpoint(self, checkpoint: StoredCheckpoint, public_key: str) -> int:
        with self.dialect.write() as cur:
            return self._insert_checkpoint(cur, checkpoint, public_key)

    def add_periodic_checkpoint(
        self, checkpoint: StoredCheckpoint, public_key: str, since: float
    ) -> int | None:
        with self.dialect.write() as cur:
            self.dialect.lock_key(cur, "keel.audit.checkpoint")  # one writer at a time
            if cur.execute(self.q["checkpoint_since"], (since,)).fetchone() is not None:
                return None
            return self._insert_checkpoint(cur, checkpoint, public_key)

    def _insert_checkpoint(self, cur: Cursor, checkpoint: StoredCheckpoint, public_key: str) -> int:
        row = (checkpoint.at, checkpoint.by, checkpoint.workflow, checkpoint.key_id,
               canonical_json(dict(checkpoint.signature)), len(checkpoint.heads),
               pack_heads(checkpoint.heads))  # fmt: skip
        (checkpoint_id,) = cur.execute(self.q["insert_checkpoint"], row).fetchone()
        cur.execute(self.q["insert_audit_key"], (checkpoint.key_id, public_key, checkpoint.at))
        return int(checkpoint_id)

    def checkpoints(self, limit: int | None = 100) -> list[CheckpointSummary]:
        with self.dialect.read() as cur:
            most = limit if limit is not None else 2**62  # no NULL limit in SQLite
            rows = cur.execute(self.q["select_checkpoints"], (most,)).fetchall()
        return [CheckpointSummary(int(row[0]), float(row[1]), row[2], row[3], str(row[4]),
                                  int(row[5])) for row in rows]  # fmt: skip

    def checkpoint(self, checkpoint_id: int) -> StoredCheckpoint | None:
        with self.dialect.read() as cur:
            row = cur.execute(self.q["select_checkpoint"], (checkpoint_id,)).fetchone()
        if row is None:
            return None
        found, at, by, workflow, _, _, signature, packed = row
        return StoredCheckpoint(float(at), by, workflow, json.loads(signature),
                                unpack_heads(packed, int(found)), int(found))  # fmt: skip

    def add_audit_key(self, key_id: str, public_key: str, at: float) -> None:
        with self.dialect.write() as cur:
            cur.execute(self.q["insert_audit_key"], (key_id, public_key, at))

    def audit_keys(self) -> list[AuditKey]:
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["select_audit_keys"]).fetchall()
        return [AuditKey(str(k), str(p), float(at)) for k, p, at in rows]
