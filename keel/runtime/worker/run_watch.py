"""What the worker learns from the events it records: which runs ended, and the child
runs of the runs it executes (``Worker.run_until_finished`` executes those too); and
handing every recorded event to the caller's observer (``keel run``'s live view), and
each run end to ``on_ended`` (the run's span: ``keel.runtime.tracing.run_spans``)."""

from __future__ import annotations

from collections.abc import Callable

from keel.engine.events import NodeAwaiting, RunEnded
from keel.engine.state import is_finished
from keel.errors import RunNotFoundError
from keel.store.protocol import Store
from keel.store.records import StoredEvent

Observer = Callable[[list[StoredEvent]], None]


class RunWatch:
    def __init__(self, store: Store, observer: Observer | None = None) -> None:
        self.store = store
        self.observer = observer
        #: runs whose end this worker recorded or saw
        self.ended: set[str] = set()
        #: child runs of the runs this worker executes, not ended yet
        self.children: set[str] = set()
        #: told of each run end this worker records
        self.on_ended: Callable[[StoredEvent], None] | None = None

    def observe(self, events: list[StoredEvent]) -> None:
        if not events:
            return
        for stored in events:
            event = stored.event
            if isinstance(event, RunEnded):
                self.ended.add(stored.run_id)
                self.children.discard(stored.run_id)
                if self.on_ended is not None:
                    self.on_ended(stored)
            elif isinstance(event, NodeAwaiting) and event.waits_for == "subworkflow":
                self.children.add(str(event.details["run_id"]))
        if self.observer is not None:
            self.observer(events)

    def add_descendants(
        self, run_ids: list[str], may_have_children: Callable[[str], bool] = lambda _: True
    ) -> None:
        """Watch the child runs the runs have started already (and theirs); the store
        is asked only about runs that ``may_have_children`` (their plan starts some)."""
        found: set[str] = set()
        stack = [run for run in run_ids if may_have_children(run)]
        while stack:
            for child in self.store.list_runs(parent=stack.pop(), limit=1_000_000):
                if child.id not in found:
                    found.add(child.id)
                    stack.append(child.id)
        self.children |= found

    def run_ended(self, run_id: str) -> bool:
        """Whether the store says the run ended (another process may have ended it)."""
        try:
            return is_finished(self.store.get_run(run_id).status)
        except RunNotFoundError:
            return True
