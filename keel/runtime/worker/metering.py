"""The worker's side of metrics: what it claims and commits, turned into counts.

The worker hands over facts it has anyway, at the points it learns them: every attempt
it starts (``claimed``: from a claim, or leased with a commit), every transition it
commits (``committed``: from ``Recorder.noted``, the one place every commit of the
worker passes), and the attempts its lease keeping reclaims (``reclaimed``). Times are
the events' (the run clock, as in the history): an attempt's duration is its outcome
event's time less its ``NodeStarted``'s, its queue lag that start less the time it was
ready on its queue.

Per attempt that is a dict entry kept and removed, and a few increments on children of
the metrics looked up once per workflow and node. An attempt whose outcome this worker
never records (given back, its lease lost) leaves its start behind: at most ``keep``
of those are kept, the oldest dropped first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from keel.engine.events import (
    NodeFailed,
    NodeReclaimed,
    NodeScheduled,
    NodeSucceeded,
    RunCancelled,
    RunCompleted,
    RunEnded,
    RunStarted,
)
from keel.store.records import Claimed, StoredEvent
from keel.store.writes import Committed, CreateChild, Transition

if TYPE_CHECKING:  # a worker that counts imported them already
    from prometheus_client import Histogram

    from keel.runtime.metrics import Metrics

#: how a run's end event names its status
STATUS = {RunCompleted: "succeeded", RunCancelled: "cancelled"}

_Attempt = tuple[str, str, int | None, int]


class Metering:
    def __init__(
        self, metrics: Metrics, workflow_of: Callable[[str], str], *, keep: int = 10_000
    ) -> None:
        """``workflow_of``: the workflow of a run (from the worker's cache)."""
        self.metrics = metrics
        self.workflow_of = workflow_of
        self.keep = keep
        #: attempts started and not recorded yet -> their ``NodeStarted`` time
        self._started: dict[_Attempt, float] = {}
        #: the metrics' children per (workflow, node), and per queue
        self._nodes: dict[tuple[str, str], _NodeMeters] = {}
        self._lags: dict[str, Histogram] = {}

    def claimed(self, claimed: Sequence[Claimed]) -> None:
        """Attempts the worker starts: their start, and how long they waited."""
        for item in claimed:
            lease, at = item.lease, item.started.at
            self._started[(lease.run_id, lease.node, lease.item, lease.attempt)] = at
            if item.ready_at is not None:
                lag = self._lags.get(item.queue)
                if lag is None:
                    lag = self._lags[item.queue] = self.metrics.queue_lag.labels(item.queue)
                lag.observe(max(0.0, at - item.ready_at))
        while len(self._started) > self.keep:  # never recorded here: forget the oldest
            del self._started[next(iter(self._started))]

    def committed(self, committed: Committed) -> None:
        """A transition the worker committed: the runs it started and ended, and the
        attempts whose outcomes it recorded."""
        events = committed.events
        run_id = committed.transition.run_id
        workflow: str | None = None
        failed: set[tuple[str, int | None]] = set()
        for stored in events:
            event = stored.event
            if isinstance(event, NodeSucceeded | NodeFailed):
                workflow = workflow or self.workflow_of(run_id)
                self._ended(workflow, stored, event, failed)
            elif isinstance(event, NodeScheduled) and (event.node, event.item) in failed:
                workflow = workflow or self.workflow_of(run_id)
                self._node(workflow, event.node).retries.inc()
            elif isinstance(event, RunStarted):
                self.metrics.runs_started.labels(event.workflow).inc()
            elif isinstance(event, RunEnded):
                workflow = workflow or self.workflow_of(run_id)
                status = STATUS.get(type(event), "failed")
                self.metrics.runs_finished.labels(workflow, status).inc()
        self._children(committed.transition)

    def reclaimed(self, events: list[StoredEvent]) -> None:
        """Attempts put back on the queue from dead holders or expired leases."""
        count = sum(isinstance(stored.event, NodeReclaimed) for stored in events)
        if count:
            self.metrics.reclaims.inc(count)

    def _ended(
        self,
        workflow: str,
        stored: StoredEvent,
        event: NodeSucceeded | NodeFailed,
        failed: set[tuple[str, int | None]],
    ) -> None:
        started = self._started.pop((stored.run_id, event.node, event.item, event.attempt), None)
        if started is None:
            return  # not an attempt this worker ran (a wait that timed out, a child refused)
        meters = self._node(workflow, event.node)
        meters.duration.observe(max(0.0, stored.at - started))
        if isinstance(event, NodeSucceeded):
            meters.succeeded.inc()
            return
        meters.failed.inc()
        failed.add((event.node, event.item))
        self.metrics.failures.labels(workflow, event.node, event.error.type).inc()

    def _children(self, transition: Transition) -> None:
        """The child runs the transition created (and those their first ones did)."""
        for write in transition.writes:
            if isinstance(write, CreateChild):
                self.metrics.runs_started.labels(write.spec.name).inc()
                self._children(write.first)

    def _node(self, workflow: str, node: str) -> _NodeMeters:
        meters = self._nodes.get((workflow, node))
        if meters is None:
            meters = self._nodes[(workflow, node)] = _NodeMeters(self.metrics, workflow, node)
        return meters


class _NodeMeters:
    """The children of the per-node metrics, looked up once (``labels`` costs a lock
    and a few checks per call)."""

    __slots__ = ("duration", "failed", "retries", "succeeded")

    def __init__(self, metrics: Metrics, workflow: str, node: str) -> None:
        self.succeeded = metrics.attempts.labels(workflow, node, "succeeded")
        self.failed = metrics.attempts.labels(workflow, node, "failed")
        self.retries = metrics.retries.labels(workflow, node)
        self.duration = metrics.durations.labels(workflow, node)
