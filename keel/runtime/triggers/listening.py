"""Which workflows' ends some deployed workflow's completion trigger listens to.

A run's end is recorded with an outbox item ("completion") only when some live
``CompletionTrigger`` names its workflow, so a run nobody listens to costs nothing more
than before. ``advance`` asks on each ending transition (a set lookup); the answer comes
from the deployments, read again at most every ``REFRESH`` seconds: a trigger deployed
just now listens within that long. Once an ending transition carries the item, the end
is as durable as the run's status (same transaction); the pump fires it afterwards.

This module imports nothing of the runtime's run machinery (``keel.runtime.runs`` uses it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from keel.spec.model import WorkflowSpec
from keel.spec.triggers import CompletionTrigger
from keel.store.deployments import current_versions
from keel.store.protocol import Store

#: seconds a read of the deployments is trusted for
REFRESH = 1.0
#: the outbox "notifier" of a run's end that completion triggers listen to
COMPLETION = {"kind": "completion"}


class Listening:
    """The names of the workflows some deployed current version's completion trigger
    follows (its ``after``), read from the store at most every ``refresh`` seconds."""

    def __init__(
        self,
        store: Store,
        load_spec: Callable[[str], WorkflowSpec],
        *,
        refresh: float = REFRESH,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.load_spec = load_spec
        self.refresh = refresh
        self.monotonic = monotonic
        self._names: frozenset[str] = frozenset()
        self._until = float("-inf")
        self._by_version: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()  # request threads of a server share a cache

    def listened(self, workflow: str) -> bool:
        """Whether a run of ``workflow`` ending should be recorded for the triggers."""
        if self.monotonic() >= self._until:
            self.read()
        return workflow in self._names

    def read(self) -> None:
        """Read the deployments now (a test, or a deploy made in this process)."""
        with self._lock:
            names: set[str] = set()
            for deployment in current_versions(self.store.deployments()).values():
                names |= self._after(deployment.version)
            self._names = frozenset(names)
            self._until = self.monotonic() + self.refresh

    def _after(self, version: str) -> frozenset[str]:
        found = self._by_version.get(version)
        if found is None:
            spec = self.load_spec(version)
            found = frozenset(t.after for t in spec.triggers if isinstance(t, CompletionTrigger))
            self._by_version[version] = found
        return found
