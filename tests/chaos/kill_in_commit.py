"""Run or resume the crash workflow, SIGKILLing this process inside its Nth write
transaction (after the rows are written, before COMMIT).

    python kill_in_commit.py DB_PATH N

A fault-injecting store for tests only: it wraps the real SQLite store's append step,
the one every write (starting a run, claiming, recording an outcome, reclaiming) goes
through, so the kill lands in the middle of a real transaction.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from keel.authoring.loading import load_workflow
from keel.runtime import Worker, open_store, start_run
from keel.store.sqlite.store import SQLiteStore

#: loaded the way `keel run` loads it, so `keel resume` finds the same module names
FLOW = str(Path(__file__).with_name("crashflow.py"))


def main() -> None:
    db, kill_at = sys.argv[1], int(sys.argv[2])
    calls = 0
    original = SQLiteStore._append

    def append(self: SQLiteStore, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        stored = original(self, *args, **kwargs)
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return stored

    SQLiteStore._append = append  # type: ignore[method-assign]
    store = open_store(f"sqlite:///{db}")
    spec = load_workflow(FLOW).spec
    runs = store.list_runs(limit=1)
    run_id = runs[0].id if runs else start_run(store, spec, {}, origin=FLOW).id
    worker = Worker(store)
    worker.reclaim()
    worker.run_until_finished([run_id])
    worker.close()


if __name__ == "__main__":
    main()
