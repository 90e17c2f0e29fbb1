"""``keel why``'s reasons in a few words for a page: what holds a node back. Times stay
numbers for the template (``|when``), so the viewer's choice of zone applies."""

from __future__ import annotations

from keel.runtime.views.why_reasons import (
    AvailableLater,
    CircuitOpen,
    ConcurrencyFull,
    LeaseHolderGone,
    MapParallelFull,
    NoCode,
    NoLiveWorker,
    Paused,
    RateLimited,
    Reason,
    RetryBackoff,
    RunFailing,
    RunParallelFull,
    Stalled,
)


def reason_words(reason: Reason) -> str:
    """What holds the node, in words (the kinds that wait by design get their kind)."""
    match reason:
        case NoLiveWorker():
            return f"no live worker takes queue '{reason.queue}'"
        case LeaseHolderGone():
            return f"its worker {reason.owner.split(':')[0]} stopped; the attempt is taken back"
        case CircuitOpen():
            return f"circuit '{reason.circuit}' is open ({reason.failures} failures)"
        case ConcurrencyFull():
            return f"concurrency key '{reason.key}' is full ({reason.limit} held)"
        case RateLimited():
            return f"rate key '{reason.key}' allows {reason.limit} per {reason.per:g} s"
        case RetryBackoff():
            error = f" after {reason.error}" if reason.error else ""
            return f"retry {reason.attempt} of {reason.max_attempts} waits for its backoff{error}"
        case NoCode():
            return f"no worker has the code of {reason.task} (queue '{reason.queue}')"
        case AvailableLater():
            return f"queued on '{reason.queue}', not to be taken yet"
        case Paused():
            by = f" by {reason.by}" if reason.by else ""
            return f"the run is paused{by}" + (f": {reason.reason}" if reason.reason else "")
        case RunParallelFull():
            return f"the run has {reason.out} attempts out, its max_parallel"
        case MapParallelFull():
            return f"{reason.left} items wait for the map's max_parallel ({reason.limit})"
        case RunFailing():
            return f"the run is failing: {reason.reason}"
        case Stalled():
            return f"stalled: {reason.detail} (see keel verify)"
        case _:
            return reason.kind.replace("_", " ")
