"""Live workers: which processes execute runs from a store, and on which queues.

A worker registers when it starts, is seen again with its heartbeat (one cheap
statement every few seconds), and removes itself when it stops cleanly. A worker that
was killed is not removed: it stops being seen, so a reader asks for the workers seen
since a moment (``Store.live_workers``) and never trusts a row alone. This is what lets
``keel run --detach`` say that no worker will take a run, and what "queued, with no
live worker for its queue" reasons are built on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """One worker process as the store knows it."""

    #: the worker's lease owner: ``host:pid:start:token`` (``keel.runtime.owner``)
    owner: str
    host: str
    pid: int
    #: the queues it takes attempts from; None: every queue
    queues: tuple[str, ...] | None
    #: when it registered and when it was last seen (the store's clock)
    started_at: float
    seen_at: float

    def takes(self, queue: str) -> bool:
        return self.queues is None or queue in self.queues


def worker_row(worker: WorkerRecord) -> tuple[Any, ...]:
    """The columns of the ``workers`` table, in order, for an insert."""
    queues = None if worker.queues is None else json.dumps(list(worker.queues))
    return (worker.owner, worker.host, worker.pid, queues, worker.started_at, worker.seen_at)


def worker_of(row: Sequence[Any]) -> WorkerRecord:
    owner, host, pid, queues, started_at, seen_at = row
    listed = None if queues is None else tuple(json.loads(queues))
    return WorkerRecord(owner, host, int(pid), listed, float(started_at), float(seen_at))
