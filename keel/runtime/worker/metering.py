"""The worker's side of metrics: what it claims and commits, turned into counts.

The worker hands over facts it has anyway, at the points it learns them: every attempt
it starts (``claimed``: from a claim, or leased with a commit), every transition it
commits (``committed``: from ``Recorder.noted``, the one place every commit of the
worker passes), and the attempts its lease keeping reclaims (``reclaimed``). Times are
the events' (the run clock, as in the history): an attempt's duration is its outcome
event's time less its ``NodeStarted``'s, its queue lag that start less the time it was
ready on its queue.

Per attempt that is a dict entry kept and removed, and a few increments on children of
the metrics looked up once per workflow and node (its label bounded by
``Metrics.node_label``), per queue, per run status. An attempt whose outcome this worker
never records (given back, its lease lost) leaves its start behind: at most ``keep``
of those are kept, the oldest dropped first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from keel.engine.events import (
    NodeFailed,
    NodeReclaimed,
    NodeScheduled,
    NodeSucceeded,
    RunCancelled,
    RunCompleted,
    RunEnded,
    RunLate,
    RunStarted,
)
from keel.store.records import Claimed, StoredEvent
from keel.store.writes import Committed, CreateChild, Transition

if TYPE_CHECKING:  # a worker that counts imported them already
    from keel.runtime.metrics import CounterSeries, HistogramSeries, Metrics

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
        #: the metrics' children per (workflow, node) (nodes past the bound share one)
        self._nodes: dict[tuple[str, str], _NodeMeters] = {}
        self._labelled: dict[tuple[str, str], _NodeMeters] = {}
        #: other children, by (metric, label values): made once, then only counted
        self._children: dict[tuple[str, ...], Any] = {}
        #: the queue lag's, by queue (one per attempt: looked up without a key to make)
        self._lags: dict[str, HistogramSeries] = {}

    def claimed(self, claimed: Sequence[Claimed]) -> None:
        """Attempts the worker starts: their start, and how long they waited."""
        started, lags = self._started, self._lags
        for item in claimed:
            lease, at = item.lease, item.started.at
            started[(lease.run_id, lease.node, lease.item, lease.attempt)] = at
            if item.ready_at is not None:
                lag = lags.get(item.queue)
                if lag is None:
                    lag = lags[item.queue] = self.metrics.queue_lag.labels(item.queue)
                lag.observe(max(0.0, at - item.ready_at))
        while len(started) > self.keep:  # never recorded here: forget the oldest
            del started[next(iter(started))]

    def committed(self, committed: Committed) -> None:
        """A transition the worker committed: the runs it started and ended, and the
        attempts whose outcomes it recorded."""
        run_id = committed.transition.run_id
        workflow: str | None = None
        failed: set[tuple[str, int | None]] | None = None  # made at the first failure
        for stored in committed.events:
            event = stored.event
            if isinstance(event, NodeSucceeded):
                workflow = workflow or self.workflow_of(run_id)
                self._ended(workflow, stored, event, None)
            elif isinstance(event, NodeFailed):
                workflow = workflow or self.workflow_of(run_id)
                self._ended(workflow, stored, event, event.error.type)
                failed = failed or set()
                failed.add((event.node, event.item))
            elif (isinstance(event, NodeScheduled) and failed is not None
                  and (event.node, event.item) in failed):  # fmt: skip
                workflow = workflow or self.workflow_of(run_id)
                self._node(workflow, event.node).retried()
            elif isinstance(event, RunStarted):
                self._child("started", event.workflow).inc()
            elif isinstance(event, RunLate):
                workflow = workflow or self.workflow_of(run_id)
                self._child("late", workflow).inc()
            elif isinstance(event, RunEnded):
                workflow = workflow or self.workflow_of(run_id)
                self._child("finished", workflow, STATUS.get(type(event), "failed")).inc()
        self._created(committed.transition)

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
        error_type: str | None,
    ) -> None:
        started = self._started.pop((stored.run_id, event.node, event.item, event.attempt), None)
        if started is None:
            return  # not an attempt this worker ran (a wait that timed out, a child refused)
        meters = self._nodes.get((workflow, event.node)) or self._node(workflow, event.node)
        meters.duration.observe(max(0.0, stored.at - started))
        if error_type is None:
            meters.succeeded.inc()
            return
        meters.failed()
        self._child("failure", workflow, meters.node, error_type).inc()

    def _created(self, transition: Transition) -> None:
        """The child runs the transition created (and those their first ones did)."""
        for write in transition.writes:
            if isinstance(write, CreateChild):
                self._child("started", write.spec.name).inc()
                self._created(write.first)

    def _child(self, metric: str, *labels: str) -> Any:
        """The child of ``metric`` with these label values, made on first use."""
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            m = self.metrics
            if metric == "failure":  # bounded: a workflow's first error types only
                workflow, node, error_type = labels
                labels = (workflow, node, m.error_label(workflow, error_type))
            family: Any = {"started": m.runs_started,
                           "finished": m.runs_finished, "failure": m.failures,
                           "late": m.runs_late}[metric]  # fmt: skip
            child = self._children[key] = family.labels(*labels)
        return child

    def _node(self, workflow: str, node: str) -> _NodeMeters:
        meters = self._nodes.get((workflow, node))
        if meters is None:
            label = self.metrics.node_label(workflow, node)
            meters = self._labelled.get((workflow, label))
            if meters is None:
                meters = _NodeMeters(self.metrics, workflow, label)
                self._labelled[(workflow, label)] = meters
            self._nodes[(workflow, node)] = meters
        return meters


class _NodeMeters:
    """The series of one node's metrics, looked up once (``labels`` makes a tuple and
    looks it up at each call): those of every attempt made at once, those of failures
    on the first one."""

    __slots__ = ("_failed", "_retries", "duration", "metrics", "node", "succeeded", "workflow")

    def __init__(self, metrics: Metrics, workflow: str, node: str) -> None:
        self.metrics, self.workflow, self.node = metrics, workflow, node
        self.succeeded = metrics.attempts.labels(workflow, node, "succeeded")
        self.duration = metrics.durations.labels(workflow, node)
        self._failed: CounterSeries | None = None
        self._retries: CounterSeries | None = None

    def failed(self) -> None:
        if self._failed is None:
            self._failed = self.metrics.attempts.labels(self.workflow, self.node, "failed")
        self._failed.inc()

    def retried(self) -> None:
        if self._retries is None:
            self._retries = self.metrics.retries.labels(self.workflow, self.node)
        self._retries.inc()
