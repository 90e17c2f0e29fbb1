"""An attempt this worker has no code for: give it back for a worker that has, for a
while, then fail it.

Workers may load different code (one per team, per queue, per host), and a run may be
claimed by one that lacks its tasks' module. That is not the task's failure: the worker
records a ``NodeReclaimed`` whose reason says which worker had no code for which task
(worded by ``keel.engine.reclaims``, by which ``keel why`` knows it too), and puts the
same attempt back on the queue a little later (the delay doubles, up to ``MAX_DELAY``),
so that another worker takes it. How long this goes on is derived from
the history, not from memory: once the first such release of the attempt is
``code_wait`` seconds old, the attempt fails, not to be retried, saying no worker had
the code. With ``code_wait`` 0 (``keel run``, ``keel resume``: the process loaded the
run's own code) it fails at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from keel.engine.events import ErrorInfo, Event, NodeFailed, NodeReclaimed
from keel.engine.reclaims import lacked_code, no_code_reason
from keel.store.records import Lease, StoredEvent

FIRST_DELAY = 0.5
MAX_DELAY = 30.0


def releases(history: Sequence[StoredEvent], lease: Lease) -> list[StoredEvent]:
    """The earlier releases of this attempt for want of code."""
    return [
        stored
        for stored in history
        if isinstance(stored.event, NodeReclaimed)
        and (stored.event.node, stored.event.item, stored.event.attempt)
        == (lease.node, lease.item, lease.attempt)
        and lacked_code(stored.event)
    ]


def missing_code(
    history: Sequence[StoredEvent],
    lease: Lease,
    task: str,
    why: str,
    *,
    now: float,
    code_wait: float,
) -> tuple[Event, float | None]:
    """What to record for an attempt of ``task`` that ``lease.owner`` has no code for
    (``why``): a release and when the attempt is next available, or, past the bound,
    its failure (and None)."""
    earlier = releases(history, lease)
    waited = now - earlier[0].at if earlier else 0.0
    if code_wait <= 0 or (earlier and waited >= code_wait):
        if earlier:
            message = (
                f"no worker had the code for task '{task}' ({len(earlier)} tries over "
                f"{waited:.0f} s, the last: {why}); start a worker with the code that "
                "defines it (keel worker MODULE_OR_FILE)"
            )
        else:
            message = (
                f"{why}; load the code that defines it (keel resume --code FILE_OR_MODULE), "
                "or leave the run to a keel worker that has it"
            )
        error = ErrorInfo(type="NoWorkerHasCode", message=message, retryable=False)
        return NodeFailed(node=lease.node, attempt=lease.attempt, error=error,
                          item=lease.item), None  # fmt: skip
    delay = min(FIRST_DELAY * 2 ** min(len(earlier), 16), MAX_DELAY, max(code_wait - waited, 0.0))
    reason = no_code_reason(lease.owner, task)
    event = NodeReclaimed(node=lease.node, attempt=lease.attempt, owner=lease.owner,
                          reason=reason, item=lease.item)  # fmt: skip
    return event, now + delay
