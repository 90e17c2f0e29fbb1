"""What every route shares: the store, a cache of compiled plans and definitions (both
immutable by version, so sharing them between request threads is safe), the metrics
and the clock.
Kept on ``app.state.service``; routes get it with ``Depends(service)``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from fastapi import HTTPException, Request

from keel.engine.state import is_finished
from keel.runtime.clock import Clock, clock_for
from keel.runtime.metrics import Metrics
from keel.runtime.runs import RunCache
from keel.store.protocol import Store
from keel.store.records import RunRecord


@dataclass
class Service:
    store: Store
    #: plans by version only: the server starts runs, it never keeps their states
    plans: RunCache
    #: where the routes count what they do (the runs they start), served at /metrics
    metrics: Metrics
    clock: Clock = field(init=False)

    def __post_init__(self) -> None:
        self.clock = clock_for(self.store)

    def started(self, workflow: str, count: int = 1) -> None:
        """Count runs of ``workflow`` a route started."""
        if count:
            self.metrics.runs_started.labels(workflow).inc(count)

    def acted(self, record: RunRecord) -> RunRecord:
        """A run after a route's action on it: an action is refused on a run that has
        ended, so one that has ended now was ended by it (a cancel, a rejection, the
        last approval): counted here, as a worker counts the ends it records."""
        if is_finished(record.status):
            self.metrics.runs_finished.labels(record.workflow, record.status).inc()
        return record


def open_service(store: Store, metrics: Metrics) -> Service:
    return Service(store, RunCache(store, capacity=0), metrics)


async def service(request: Request) -> Service:
    """Async (it does no I/O), so FastAPI does not hand it to a thread of its own."""
    found: Service = request.app.state.service
    return found


def encode_cursor(*parts: float | str | int) -> str:
    """An opaque page cursor (clients pass it back as given)."""
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def decode_cursor(text: str, kinds: tuple[type, ...]) -> tuple[float | str | int, ...]:
    """The parts of a cursor ``encode_cursor`` made; 422 for anything else."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        parts = None
    if (
        not isinstance(parts, list)
        or len(parts) != len(kinds)
        or not all(
            isinstance(p, k) and not isinstance(p, bool) for p, k in zip(parts, kinds, strict=True)
        )
    ):
        raise HTTPException(422, "cursor: not a cursor this server gave; pass next_cursor as is")
    return tuple(parts)
