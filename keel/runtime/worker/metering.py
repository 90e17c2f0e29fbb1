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
from keel.store.writes import Committed, CreateChild, CreateRun

if TYPE_CHECKING:  # a worker that counts imported them already
    from keel.runtime.metrics import CounterSeries, HistogramSeries, Metrics

#: how a run's end event names its status
STATUS = {RunCompleted: "succeeded", RunCancelled: "cancelled"}

_Attempt = tuple[str, str, int | None, int]


#: what an event counts for, by its class (``_what``): most events count for nothing
_NOTHING, _SUCCEEDED, _FAILED, _SCHEDULED, _STARTED, _LATE, _ENDED = range(1, 8)
_WHAT: dict[type, int] = {}


def _what(event: object) -> int:
    """What ``event`` counts for, found once per class (then one dictionary lookup
    per event, not a row of ``isinstance`` for each)."""
    cls = type(event)
    found = _WHAT.get(cls)
    if found is None:
        cases = ((NodeSucceeded, _SUCCEEDED), (NodeFailed, _FAILED),
                 (NodeScheduled, _SCHEDULED), (RunStarted, _STARTED), (RunLate, _LATE),
                 (RunEnded, _ENDED))  # fmt: skip
        found = _WHAT[cls] = next((what for base, what in cases if issubclass(cls, base)),
                                  _NOTHING)  # fmt: skip
    return found


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
        #: the run last asked about, and its workflow: a run commits many times in a row
        self._last: tuple[str, str] = ("", "")

    def claimed(self, claimed: Sequence[Claimed]) -> None:
        """Attempts the worker starts: their start, and how long they waited."""
        started, lags = self._started, self._lags
        for item in claimed:
            lease, at, ready_at = item.lease, item.started.at, item.ready_at
            started[(lease.run_id, lease.node, lease.item, lease.attempt)] = at
            if ready_at is not None:
                lag = lags.get(item.queue) or self._lag(item.queue)
                lag.observe(at - ready_at if at > ready_at else 0.0)
        if len(started) > self.keep:
            self._forget()

    def committed(self, committed: Committed) -> None:
        """A transition the worker committed: the runs it started and ended, and the
        attempts whose outcomes it recorded."""
        run_id = committed.transition.run_id
        workflow: str | None = None
        failed: set[tuple[str, int | None]] | None = None  # made at the first failure
        for stored in committed.events:
            event: Any = stored.event  # which of the events ``what`` says
            what = _WHAT.get(type(event)) or _what(event)
            if what == _NOTHING or (what == _SCHEDULED and failed is None):
                continue  # a node scheduled is counted only as a failed one's retry
            if what == _STARTED:
                self._child("started", event.workflow).inc()
                continue
            if workflow is None:
                workflow = self._workflow(run_id)
            if what == _SUCCEEDED:
                self._ended(workflow, stored, event, None)
            elif what == _FAILED:
                self._ended(workflow, stored, event, event.error.type)
                failed = failed or set()
                failed.add((event.node, event.item))
            elif what == _SCHEDULED:
                if failed is not None and (event.node, event.item) in failed:
                    self._node(workflow, event.node).retried()
            elif what == _LATE:
                self._child("late", workflow).inc()
            else:
                self._child("finished", workflow, STATUS.get(type(event), "failed")).inc()
        writes = committed.transition.writes
        kinds = set(map(type, writes))
        if CreateChild in kinds or CreateRun in kinds:  # rare: found without a loop of ours
            for write in writes:
                if type(write) is CreateChild or type(write) is CreateRun:
                    self._created(write)

    def reclaimed(self, events: list[StoredEvent]) -> None:
        """Attempts put back on the queue from dead holders or expired leases."""
        count = sum(isinstance(stored.event, NodeReclaimed) for stored in events)
        if count:
            self.metrics.reclaims.inc(count)

    def _workflow(self, run_id: str) -> str:
        last = self._last
        if last[0] == run_id:
            return last[1]
        workflow = self.workflow_of(run_id)
        self._last = (run_id, workflow)
        return workflow

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
        took = stored.at - started
        if error_type is None:
            meters.duration.observe(took if took > 0.0 else 0.0, meters.succeeded)
            return
        meters.duration.observe(took if took > 0.0 else 0.0)
        meters.failed()
        self._child("failure", workflow, meters.node, error_type).inc()

    def _created(self, write: CreateChild | CreateRun) -> None:
        """A child run or a fork the transition created (and those its first transition
        did)."""
        self._child("started", write.spec.name).inc()
        for inner in write.first.writes:
            if type(inner) is CreateChild:
                self._created(inner)

    def _forget(self) -> None:
        """Attempts never recorded here (given back, their lease lost): the oldest go."""
        started = self._started
        while len(started) > self.keep:
            del started[next(iter(started))]

    def _lag(self, queue: str) -> HistogramSeries:
        lag = self._lags[queue] = self.metrics.queue_lag.labels(queue)
        return lag

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
        if not self.duration.shares_lock(self.succeeded):  # counted together: see ``_ended``
            raise ValueError("the attempts and their durations must share their lock")
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
