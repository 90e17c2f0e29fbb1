"""``keel.Client``: what the CLI does to runs, from Python.

Start runs, read them, list and decide approvals, send signals, pause, unpause and
cancel, against the store a URL names (``KEEL_DATABASE_URL`` or ``.keel/keel.db`` by
default), from any process: a web handler approving a step, a service sending a signal.
Starting a run records it; a worker (``keel resume``, or the process that runs it)
executes it.
"""

from __future__ import annotations

from typing import Any

from keel.runtime.operations.control import cancel_run, record_run
from keel.runtime.operations.interventions import (
    approve,
    pause_run,
    reject,
    send_signal,
    unpause_run,
)
from keel.runtime.stores import open_store
from keel.spec.model import WorkflowSpec
from keel.spec.registry import SpecRegistry
from keel.store.protocol import Store
from keel.store.records import RunRecord, StoredEvent, Wait


class Client:
    """One store connection; use it as a context manager or call ``close``."""

    def __init__(self, url: str | None = None, *, store: Store | None = None) -> None:
        self.store = store if store is not None else open_store(url)
        self._owned = store is None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self.store.close()

    # --- runs -----------------------------------------------------------------------------

    def start(self, workflow: Any, run_input: Any = None, *, origin: str | None = None) -> str:
        """Record a new run of ``workflow`` (a ``@keel.workflow`` or a spec); its id.

        A ``@keel.workflow`` brings the definitions of the child workflows it calls; a
        bare spec's children must be in the store already."""
        spec: WorkflowSpec = getattr(workflow, "spec", workflow)
        registry: SpecRegistry | None = getattr(workflow, "registry", None)
        if origin is None and hasattr(workflow, "__module__"):
            origin = workflow.__module__ if workflow.__module__ != "__main__" else None
        run_input = {} if run_input is None else run_input
        # the id is all it returns: the run's record is not read back (start_run does)
        committed = record_run(self.store, spec, run_input, origin=origin, registry=registry)
        return committed.transition.run_id

    def run(self, run_id: str) -> RunRecord:
        return self.store.get_run(run_id)

    def runs(self, *, status: str | None = None, workflow: str | None = None,
             parent: str | None = None, limit: int = 50) -> list[RunRecord]:  # fmt: skip
        return self.store.list_runs(status=status, workflow=workflow, parent=parent, limit=limit)

    def history(self, run_id: str) -> list[StoredEvent]:
        return self.store.history(self.store.get_run(run_id).id)

    def cancel(self, run_id: str, *, reason: str = "", by: str | None = None) -> RunRecord:
        return cancel_run(self.store, run_id, reason=reason, by=by)

    def pause(self, run_id: str, *, reason: str = "", by: str | None = None) -> RunRecord:
        return pause_run(self.store, run_id, reason=reason, by=by)

    def unpause(self, run_id: str, *, reason: str = "", by: str | None = None) -> RunRecord:
        return unpause_run(self.store, run_id, reason=reason, by=by)

    # --- waiting ----------------------------------------------------------------------------

    def approvals(self, *, run_id: str | None = None) -> list[Wait]:
        """Approvals waiting for a decision, oldest first."""
        run = self.store.get_run(run_id).id if run_id is not None else None
        return self.store.waits(waits_for="approval", run_id=run)

    def waits(self, run_id: str | None = None) -> list[Wait]:
        """Everything waiting (approvals, timers, signals, child runs), oldest first."""
        run = self.store.get_run(run_id).id if run_id is not None else None
        return self.store.waits(run_id=run)

    def approve(self, run_id: str, node: str, *, data: Any = None, comment: str = "",
                by: str | None = None) -> RunRecord:  # fmt: skip
        return approve(self.store, run_id, node, data=data, comment=comment, by=by)

    def reject(self, run_id: str, node: str, *, comment: str = "",
               by: str | None = None) -> RunRecord:  # fmt: skip
        return reject(self.store, run_id, node, comment=comment, by=by)

    def signal(self, run_id: str, name: str, data: Any = None, *,
               by: str | None = None) -> RunRecord:  # fmt: skip
        return send_signal(self.store, run_id, name, data, by=by)
