"""What every route shares: the store, a cache of compiled plans and definitions (both
immutable by version, so sharing them between request threads is safe), the metrics
and the clock.
Kept on ``app.state.service``; routes get it with ``Depends(service)``. The routes'
store counts the runs their commits start and end (``keel.server.metered``), so no
route counts anything itself.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request

from keel.runtime.clock import Clock, clock_for
from keel.runtime.metrics import Metrics
from keel.runtime.runs import RunCache
from keel.server.metered import MeteredStore
from keel.store.protocol import Store

if TYPE_CHECKING:
    from keel.audit.signing import SigningKey


@dataclass
class Service:
    #: the server's store, counting the runs its commits start and end in ``metrics``
    store: Store
    #: plans by version only: the server starts runs, it never keeps their states
    plans: RunCache
    #: what the server counts, served at /metrics
    metrics: Metrics
    #: the key approvals decided here and checkpoints made here are signed with (None:
    #: unsigned decisions, no checkpoints: ``keel.runtime.audit_key``)
    signing_key: SigningKey | None = None
    clock: Clock = field(init=False)

    def __post_init__(self) -> None:
        self.clock = clock_for(self.store)


def open_service(store: Store, metrics: Metrics, signing_key: SigningKey | None = None) -> Service:
    metered = MeteredStore(store, metrics)
    return Service(metered, RunCache(metered, capacity=0), metrics, signing_key)


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
