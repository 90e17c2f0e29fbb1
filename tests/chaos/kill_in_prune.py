"""Prune every ended run of a database two per transaction, SIGKILLing this process
inside its Nth batch (after the batch's rows are deleted and its tombstones written,
before COMMIT).

    python kill_in_prune.py DB_PATH KEY_FILE N

A fault-injecting store for tests only: it wraps the step of the real SQLite store that
removes a batch's rows (``SQLPruning._prune``), so the kill lands in the middle of a
real transaction.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from keel.audit.retention import prune
from keel.audit.signing import SigningKey
from keel.store.sqlite import SQLiteStore
from keel.store.sqlstore.pruning import SQLPruning


def main() -> None:
    db, key_file, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    calls = 0
    original = SQLPruning._prune

    def crashing(self: SQLPruning, *args: Any) -> None:
        nonlocal calls
        original(self, *args)
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    SQLPruning._prune = crashing  # type: ignore[method-assign]
    store = SQLiteStore(db)
    key = SigningKey.load(Path(key_file))
    prune(store, time.time(), now=time.time, key=key, by="chaos", batch=2)
    store.close()


if __name__ == "__main__":
    main()
