"""What happened to each node of a run, read from its history: status, attempts, when it
started and ended, its input and output or error. ``keel show``, the end-of-run summary
and (later) the dashboard all read runs through this one view of the history.

Durations are those of the last try: a node's is its last attempt's (a retry's backoff
and the attempts that failed before are not in it; ``attempts`` says how many there
were), and a run retried by hand counts from its last ``keel retry`` / ``keel skip``.
The nodes of a run that ended before they started are ``not_started``.

A map counts per item: its ``attempts`` is the highest attempt number of any item and
its ``retries`` the attempts that were not an item's first, so three items that each
succeeded first time made 1 attempt and 0 retries, not 3 attempts. Nodes are listed in
the plan's order, then the failure-path steps (compensations...) in the order they came.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from keel.engine.events import (
    ApprovalDecided,
    ApprovalOverdue,
    ErrorInfo,
    MapExpanded,
    NodeAwaiting,
    NodeEvent,
    NodeFailed,
    NodeReclaimed,
    NodeReused,
    NodeScheduled,
    NodeSetByHand,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    RunForked,
    RunRetried,
    RunStarted,
)
from keel.engine.plan import Plan
from keel.engine.state import NodeStatus, RunState, apply, is_finished
from keel.store.records import StoredEvent


@dataclass(slots=True)
class NodeReport:
    id: str
    status: str = NodeStatus.WAITING.value
    #: attempts started (a reclaimed attempt that ran again counts once); a map: the
    #: highest attempt number of any of its items
    attempts: int = 0
    #: attempts started that were not the first of the node (a map: of their item)
    retries: int = 0
    #: attempts started again after their holder died or their lease expired
    reclaimed: int = 0
    #: when its first attempt started
    started_at: float | None = None
    #: when its last attempt started (a map node: when its items were expanded)
    attempt_started_at: float | None = None
    #: when its last attempt ended (None while it runs again)
    ended_at: float | None = None
    args: dict[str, Any] | None = None
    output: Any = None
    error: ErrorInfo | None = None
    reason: str | None = None
    #: map nodes: how many items and how many succeeded
    items: int | None = None
    items_done: int = 0
    #: when a retry waits for its backoff: the time it may start (None once it started)
    retry_at: float | None = None
    #: waiting nodes: what for (``approval``...), the details, and until when
    waits_for: str | None = None
    wait: dict[str, Any] | None = None
    until: float | None = None
    #: who decided an approval, and how
    decision: str | None = None
    #: a fork's node: the run whose recorded output it took instead of running
    reused_from: str | None = None
    _attempts_seen: set[tuple[int | None, int]] = field(default_factory=set, repr=False)

    @property
    def duration(self) -> float | None:
        """How long its last attempt took (None until it ends)."""
        if self.attempt_started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.attempt_started_at

    def _started(self, at: float) -> None:
        self.started_at = at if self.started_at is None else self.started_at
        self.attempt_started_at, self.ended_at = at, None


@dataclass(slots=True)
class RunReport:
    state: RunState
    nodes: dict[str, NodeReport]
    started_at: float | None
    ended_at: float | None
    #: times it was retried by hand (``keel retry``; not ``keel skip``)
    retries: int = 0
    #: when it was last retried by hand (``keel retry``, or ``keel skip`` of a failed run)
    retried_at: float | None = None
    #: the nodes of the failed run set by hand (``keel skip``), in that order
    set_by_hand: list[str] = field(default_factory=list)
    #: a fork: the run it was forked from and the node (``RunStarted.fork``)
    forked_from: dict[str, str] | None = None
    #: the runs forked from this one: ``run_id``, ``node``, ``by``, ``at``, in order
    forks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        """How long it took since it started, or since it was last retried by hand."""
        start = self.retried_at if self.retried_at is not None else self.started_at
        if start is None or self.ended_at is None:
            return None
        return self.ended_at - start

    def elapsed(self, now: float) -> float | None:
        """``duration``, or for a run not ended, how long it has been going at ``now``
        (what its expected duration is measured against)."""
        if is_finished(self.state.status):
            return self.duration
        start = self.retried_at if self.retried_at is not None else self.started_at
        return None if start is None else max(0.0, now - start)


def _track(report: NodeReport, stored: StoredEvent) -> None:
    event = stored.event
    if isinstance(event, NodeScheduled) and event.item is None:
        report.args = event.args
        report.retry_at = event.not_before
    elif isinstance(event, NodeStarted):
        if event.item is None:
            report.retry_at = None
            report._started(stored.at)
        elif report.started_at is None:  # a map item: the map started at its expansion
            report.started_at = stored.at
        key = (event.item, event.attempt)
        if key not in report._attempts_seen:
            report._attempts_seen.add(key)
            if event.attempt > 1:
                report.retries += 1
            if event.item is None:
                report.attempts += 1
            else:
                report.attempts = max(report.attempts, event.attempt)
    elif isinstance(event, NodeReclaimed):
        report.reclaimed += 1
    elif isinstance(event, MapExpanded):
        report.items, report.items_done = event.count, 0
        report._started(stored.at)
    elif isinstance(event, NodeSucceeded):
        if event.item is None:
            report.output, report.ended_at = event.output, stored.at
        else:
            report.items_done += 1
    elif isinstance(event, NodeFailed):
        report.error = event.error
        if event.item is None or event.attempt == 0:  # not one item of a map
            report.ended_at = stored.at
    elif isinstance(event, NodeSkipped):
        report.reason, report.ended_at = event.reason, stored.at
    elif isinstance(event, NodeAwaiting):
        report.waits_for, report.wait, report.until = event.waits_for, event.details, event.until
        report._started(stored.at)
        report.attempts = event.attempt
    elif isinstance(event, ApprovalOverdue):
        report.until = None
        report.decision = f"overdue: no decision within {event.timeout:g} s (notified)"
    elif isinstance(event, ApprovalDecided):
        how = "approved" if event.approved else "rejected"
        report.decision = f"{how} by {event.by}" + (f": {event.comment}" if event.comment else "")
        if event.signature is not None:  # checked by ``keel audit check``, not here
            report.decision += f" (signed by key {event.signature.get('key_id')})"
    elif isinstance(event, NodeSetByHand):
        report.output, report.ended_at, report.error = event.output, stored.at, None
        report.attempt_started_at = None  # no attempt made this output: it took no time
        report.reason = f"set by hand by {event.by}" + (f": {event.reason}" if event.reason else "")
    elif isinstance(event, NodeReused):  # a fork's: no attempt, the output of another run
        report.output, report.ended_at, report.args = event.output, stored.at, event.args
        report.reason = f"reused from run {event.from_run[:8]}"
        report.reused_from = event.from_run
        if event.compensated:
            report.reason += " (undone there by its compensation)"


def run_report(plan: Plan, history: Iterable[StoredEvent]) -> RunReport:
    """Replay the history once, collecting per-node facts on the way."""
    state = RunState.new(plan)
    nodes = {node_id: NodeReport(node_id) for node_id in plan.nodes}
    first: float | None = None
    last: float | None = None
    retried: list[float] = []
    skipped: list[str] = []
    previous: object = None  # the event before this one
    seen: dict[str, int] = {}  # the first event of each node
    forked_from: dict[str, str] | None = None
    forks: list[dict[str, Any]] = []
    for stored in history:
        apply(state, stored.event, stored.seq)
        first = stored.at if first is None else first
        if not isinstance(stored.event, RunForked):  # a fork later is not the run's end
            last = stored.at
        if isinstance(stored.event, RunStarted):
            forked_from = stored.event.fork
        elif isinstance(stored.event, RunForked):
            event = stored.event
            forks.append({"run_id": event.run_id, "node": event.node, "by": event.by,
                          "at": stored.at})  # fmt: skip
        elif isinstance(stored.event, RunRetried):
            retried.append(stored.at)
        elif isinstance(stored.event, NodeSetByHand) and isinstance(previous, RunRetried):
            skipped.append(stored.event.node)  # keel skip of a failed run: not a retry
        if isinstance(stored.event, NodeEvent) and stored.event.node in nodes:
            node_id = stored.event.node
            _track(nodes[node_id], stored)
            seen.setdefault(node_id, stored.seq)
        previous = stored.event
    unfinished = (NodeStatus.SCHEDULED, NodeStatus.RUNNING, NodeStatus.AWAITING)
    # failure-path steps in the order they came (compensations: newest booking first);
    # one that did not come has nothing to show
    came = [step for step in plan.side_steps if state.nodes[step].status is not NodeStatus.WAITING]
    side = {step: nodes.pop(step) for step in plan.side_steps}
    for step in sorted(came, key=lambda step: seen.get(step, math.inf)):
        nodes[step] = side[step]
    for node_id, report in nodes.items():
        status = state.nodes[node_id].status
        if is_finished(state.status) and status in unfinished:
            # the run ended (failed or was cancelled) first: this attempt's outcome, if it
            # came, was discarded
            report.status = "cancelled"
        elif is_finished(state.status) and status is NodeStatus.WAITING:
            report.status = "not_started"  # it waits for nothing any more
        else:
            report.status = status.value
    retries = len(retried) - len(skipped)
    return RunReport(state, nodes, first, last if is_finished(state.status) else None, retries,
                     retried[-1] if retried else None, skipped, forked_from, forks)  # fmt: skip


def describe_wait(report: NodeReport, run_id: str) -> str:
    """What a waiting node waits for, in words, with the command that ends the wait."""
    what, command = wait_parts(report, run_id)
    return what if command is None else f"{what}: {command}"


def wait_parts(report: NodeReport, run_id: str) -> tuple[str, str | None]:
    """What a waiting node waits for, in words, and apart from it the command that ends
    the wait (None: it ends by itself), so a narrow console can put the command on a
    line of its own rather than break it."""
    from datetime import datetime

    details = report.wait or {}
    when = datetime.fromtimestamp(report.until) if report.until is not None else None
    due = f", due {when:%Y-%m-%d %H:%M:%S}" if when is not None else ""
    short = run_id[:8]
    if report.waits_for == "approval":
        who = ", ".join(details.get("assignees") or []) or details.get("role") or "anyone"
        return (f"approval {details.get('title')!r} by {who}{due}",
                f"keel approve {short} {report.id} (or keel reject)")  # fmt: skip
    if report.waits_for == "timer":
        return f"timer until {details.get('until')}", None
    if report.waits_for == "signal":
        name = details.get("signal")
        return f"signal {name!r}{due}", f"keel signal {short} {name} --data JSON"
    if report.waits_for == "subworkflow":
        child = str(details.get("run_id", ""))
        return (f"child run {child[:8]} (workflow {details.get('workflow')})",
                f"keel show {child[:8]}")  # fmt: skip
    return str(report.waits_for), None
