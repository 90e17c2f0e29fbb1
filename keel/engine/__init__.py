"""The pure core: events, run state, ``apply`` and ``decide``. No I/O, no clock.

Imports only ``keel.spec`` (and ``keel.errors``); the store and runtime build on it.
"""

from keel.engine.decide import decide, join_outcome
from keel.engine.events import (
    EVENT_TYPES,
    ErrorInfo,
    Event,
    MapExpanded,
    NodeFailed,
    NodeReclaimed,
    NodeScheduled,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    Recorded,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
    from_data,
    to_data,
)
from keel.engine.plan import NodePlan, Plan, compile_plan
from keel.engine.state import NodeState, NodeStatus, RunState, RunStatus, apply

__all__ = [
    "EVENT_TYPES",
    "ErrorInfo",
    "Event",
    "MapExpanded",
    "NodeFailed",
    "NodePlan",
    "NodeReclaimed",
    "NodeScheduled",
    "NodeSkipped",
    "NodeStarted",
    "NodeState",
    "NodeStatus",
    "NodeSucceeded",
    "Plan",
    "Recorded",
    "RunCancelled",
    "RunCompleted",
    "RunFailed",
    "RunStarted",
    "RunState",
    "RunStatus",
    "apply",
    "compile_plan",
    "decide",
    "from_data",
    "join_outcome",
    "to_data",
]
