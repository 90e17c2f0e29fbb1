"""Durable storage of specs, runs, event histories, the ready queue and timers.

``Store`` is the protocol every backend satisfies; ``SQLiteStore`` is the embedded one.
Choosing a backend from a URL is the runtime's job (``keel.runtime.stores``), so this
package never knows which backends exist beyond its own modules.
"""

from keel.store.chain import ChainLink, ChainReport, canonical_json, verify_chain
from keel.store.presence import WorkerRecord
from keel.store.protocol import Store
from keel.store.records import (
    CircuitOutcome,
    CircuitState,
    Claimed,
    Lease,
    QueuedAttempt,
    Ready,
    RunRecord,
    StoredEvent,
    Timer,
    Wait,
)
from keel.store.writes import Committed, Transition

__all__ = [
    "ChainLink",
    "ChainReport",
    "CircuitOutcome",
    "CircuitState",
    "Claimed",
    "Committed",
    "Lease",
    "QueuedAttempt",
    "Ready",
    "RunRecord",
    "Store",
    "StoredEvent",
    "Timer",
    "Transition",
    "Wait",
    "WorkerRecord",
    "canonical_json",
    "verify_chain",
]
