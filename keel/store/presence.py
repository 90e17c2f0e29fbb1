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

#: seconds since a worker was last seen after which it is taken for gone: every reader
#: of the list (the worker's own presence, ``keel why``) judges liveness by this
LIVE_WITHIN = 30.0


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
    #: the runs it executes, and only those (``keel run``, ``keel resume``; their child
    #: runs too); None: any run from its queues (``keel worker``)
    runs: tuple[str, ...] | None = None

    def takes(self, queue: str) -> bool:
        """Whether it takes attempts of any run from ``queue``."""
        return self.runs is None and (self.queues is None or queue in self.queues)


def worker_row(worker: WorkerRecord) -> tuple[Any, ...]:
    """The columns of the ``workers`` table, in order, for an insert."""
    queues = None if worker.queues is None else json.dumps(list(worker.queues))
    runs = None if worker.runs is None else json.dumps(list(worker.runs))
    return (worker.owner, worker.host, worker.pid, queues, worker.started_at, worker.seen_at,
            runs)  # fmt: skip


def worker_of(row: Sequence[Any]) -> WorkerRecord:
    owner, host, pid, queues, started_at, seen_at, runs = row
    listed = None if queues is None else tuple(json.loads(queues))
    only = None if runs is None else tuple(json.loads(runs))
    return WorkerRecord(owner, host, int(pid), listed, float(started_at), float(seen_at), only)
