"""The live triggers that hot paths look up, kept in memory: which workflows' ends some
completion trigger follows (asked on every run's ending transition), and which webhook
triggers are at a path (asked on every delivery, before the sender is authenticated).

Both answers come from the deployed current versions, read again at most every
``REFRESH`` seconds (a trigger deployed by another process is live here within that
long; a deploy through this process calls ``read`` and is live at once). A version's
triggers are taken from its spec once: a version is immutable. A lookup is a set or
dict lookup on an index built at the last read, whatever the caller asks: a path no
webhook is at costs no store read of its own, however many requests name one.

Once an ending transition carries the completion item, the end is as durable as the
run's status (same transaction); the outbox pump fires it afterwards.

This module imports nothing of the runtime's run machinery (``keel.runtime.runs`` uses it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from keel.spec.model import WorkflowSpec
from keel.spec.triggers import CompletionTrigger, Trigger, WebhookTrigger
from keel.store.deployments import current_versions
from keel.store.protocol import Store

#: seconds a read of the deployments is trusted for
REFRESH = 1.0
#: the outbox "notifier" of a run's end that completion triggers listen to
COMPLETION = {"kind": "completion"}


@dataclass(frozen=True, slots=True)
class Armed:
    """A live trigger: the deployed spec it belongs to and its place in its list."""

    spec: WorkflowSpec
    index: int
    trigger: Trigger


def armed_of(spec: WorkflowSpec) -> tuple[Armed, ...]:
    """Every trigger of ``spec``, armed."""
    return tuple(Armed(spec, index, trigger) for index, trigger in enumerate(spec.triggers))


@dataclass(frozen=True, slots=True)
class _Index:
    """What one read of the deployments found, replaced whole by the next read."""

    #: the workflows some completion trigger follows (its ``after``)
    followed: frozenset[str] = frozenset()
    #: each webhook path's triggers (every method), in deployment then spec order
    hooks: Mapping[str, tuple[Armed, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, armed: Iterable[Armed]) -> _Index:
        followed: set[str] = set()
        hooks: dict[str, list[Armed]] = {}
        for one in armed:
            if isinstance(one.trigger, CompletionTrigger):
                followed.add(one.trigger.after)
            elif isinstance(one.trigger, WebhookTrigger):
                hooks.setdefault(one.trigger.path, []).append(one)
        return cls(frozenset(followed), {path: tuple(at) for path, at in hooks.items()})


class LiveTriggers:
    """The deployed current versions' completion and webhook triggers, indexed, read
    from the store at most every ``refresh`` seconds. Request threads share one."""

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
        self._index = _Index()
        self._until = float("-inf")
        #: the armed triggers of each current version (a version's spec never changes)
        self._by_version: dict[str, tuple[Armed, ...]] = {}
        self._lock = threading.Lock()

    def listened(self, workflow: str) -> bool:
        """Whether a run of ``workflow`` ending should be recorded for the triggers."""
        return workflow in self._fresh().followed

    def hooks(self, path: str) -> tuple[Armed, ...]:
        """The webhook triggers at ``path``, whatever their method (none: empty)."""
        return self._fresh().hooks.get(path, ())

    def read(self) -> None:
        """Read the deployments now (a test, or a deploy made in this process)."""
        with self._lock:
            self._read()

    def _fresh(self) -> _Index:
        if self.monotonic() >= self._until:
            with self._lock:  # one thread reads; those that waited find it fresh
                if self.monotonic() >= self._until:
                    self._read()
        return self._index

    def _read(self) -> None:
        by_version: dict[str, tuple[Armed, ...]] = {}
        for deployment in current_versions(self.store.deployments()).values():
            version = deployment.version
            found = self._by_version.get(version)
            by_version[version] = found if found is not None else armed_of(
                self.load_spec(version)
            )  # fmt: skip
        self._by_version = by_version  # versions no longer current are let go
        self._index = _Index.of(a for armed in by_version.values() for a in armed)
        self._until = self.monotonic() + self.refresh
