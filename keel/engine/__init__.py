"""The pure core: events, run state, ``apply`` and ``decide``. No I/O, no clock.

Imports only ``keel.spec`` (and ``keel.errors``); the store and runtime build on it.
"""

from keel.engine.decide import decide, join_outcome
from keel.engine.events import (
    EVENT_TYPES,
    AttemptEvent,
    ErrorInfo,
    Event,
    MapExpanded,
    NodeEvent,
    NodeFailed,
    NodeReclaimed,
    NodeScheduled,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    RunCancelled,
    RunCompleted,
    RunEnded,
    RunFailed,
    RunStarted,
    from_data,
    node_of,
    to_data,
)
from keel.engine.plan import NodePlan, Plan, compile_plan
from keel.engine.state import NodeState, NodeStatus, RunState, RunStatus, apply, is_finished

__all__ = [
    "EVENT_TYPES",
    "AttemptEvent",
    "ErrorInfo",
    "Event",
    "MapExpanded",
    "NodeEvent",
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
    "RunCancelled",
    "RunCompleted",
    "RunEnded",
    "RunFailed",
    "RunStarted",
    "RunState",
    "RunStatus",
    "apply",
    "compile_plan",
    "decide",
    "from_data",
    "is_finished",
    "join_outcome",
    "node_of",
    "to_data",
]
