"""The server's store, counting what its commits start and end.

A route's action may change runs besides the one it names: a start creates the child
runs of a first subworkflow node in the same transaction, a cancel cascades to the
children, an approval schedules a node that starts one. So the server counts as a
worker does, from every transition it commits (``Metering.committed``): the runs
started (``RunStarted``, ``CreateChild``) and ended (``RunEnded``), whichever route and
operation committed them. Every write of a run passes ``create_run`` or ``commit``;
the rest of the store is passed through untouched.

A refused transition (``Committed.error``) changed nothing and is not counted. The
server runs no attempts, so ``Metering`` finds no start of its own for the node
outcomes it commits (a decided approval, an output set by hand) and counts none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keel.runtime.metrics import Metrics
from keel.runtime.worker.metering import Metering
from keel.spec.model import WorkflowSpec
from keel.store.protocol import Store
from keel.store.writes import Committed, Transition


class MeteredStore:
    """``store``, with what its commits start and end counted in ``metrics``."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self.store = store
        # the workflow of a run an end names: one read by id, only for commits that end
        # a run or record a node's outcome (a route's action, not a hot loop)
        self.metering = Metering(metrics, lambda run_id: store.get_run(run_id).workflow)

    def create_run(
        self,
        spec: WorkflowSpec,
        run_input: Any,
        first: Transition,
        *,
        origin: str | None = None,
        started_by: str | None = None,
    ) -> Committed:
        committed = self.store.create_run(spec, run_input, first, origin=origin,
                                          started_by=started_by)  # fmt: skip
        self.metering.committed(committed)
        return committed

    def commit(self, transitions: Sequence[Transition]) -> list[Committed]:
        results = self.store.commit(transitions)
        for committed in results:
            if committed.error is None:
                self.metering.committed(committed)
        return results

    def __getattr__(self, name: str) -> Any:
        """Every other method of the store, as it is."""
        return getattr(self.store, name)
