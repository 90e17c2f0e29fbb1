"""Why a run is not progressing: for each node that has not ended, the reason and its
data (``keel why``, ``GET /runs/{id}/why``, the reason lines of ``keel show``).

Worked out in three steps, so the rules are one pure function tested without timing:

- ``replay`` folds the history into the run's state, with the times the state does not
  keep (when each attempt was queued and started, when a wait opened, who paused it);
- ``gather`` reads the few facts only the store has, once: the run's attempts on the
  ready queue (with their circuit, limit keys, lease), the workers it lists, and, only
  when an attempt needs them, the circuits, the holders of its concurrency keys, the
  starts in its rate windows, its child runs (both in ``why_facts``);
- ``explain`` turns state, times and facts at ``now`` into a ``RunWhy``: here, the rules
  for nodes not started, waiting or mapped; in ``why_queued``, those for an attempt on
  the ready queue (what holds it back, in the order the next claim would find it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from keel.engine.plan import Plan
from keel.engine.state import ENDED, NodeState, NodeStatus, RunState, RunStatus, is_finished
from keel.runtime.views.activity import run_activity
from keel.runtime.views.why_facts import Place, StoreFacts, Timeline, gather, replay
from keel.runtime.views.why_queued import QueuedRules
from keel.runtime.views.why_reasons import (
    MapParallelFull,
    NodeWhy,
    Paused,
    Reason,
    RunFailing,
    RunParallelFull,
    RunWhy,
    Stalled,
    WaitsForApproval,
    WaitsForChildRun,
    WaitsForParents,
    WaitsForSignal,
    WaitsForTimer,
)
from keel.spec.model import ApprovalNode, SignalNode, TimerNode
from keel.store.protocol import Store
from keel.store.records import QueuedAttempt, RunRecord, StoredEvent
from keel.store.tombstones import refuse_pruned


def run_why(
    store: Store, record: RunRecord, plan: Plan, now: float,
    history: Sequence[StoredEvent] | None = None,
) -> RunWhy:  # fmt: skip
    """Why the run ``record`` (whose plan is ``plan``) has not ended, at ``now``; from
    its ``history`` when the caller has read it already."""
    refuse_pruned(record)  # no history left to say anything from
    history = store.history(record.id) if history is None else history
    state, times = replay(plan, history, record.id)
    # what it is doing, as ``keel runs`` and ``keel show`` say it (the history's status)
    by, since, why = times.paused or ("", 0.0, "")
    paused = None if times.paused is None else Paused(by=by, since=since, reason=why)
    doing = run_activity(store, dataclasses.replace(record, status=state.status.value), now,
                         state=state, paused=paused)  # fmt: skip
    return explain(record, state, times, gather(store, record, state, now), now,
                   activity=None if doing is None else doing.text)  # fmt: skip


def explain(
    record: RunRecord, state: RunState, times: Timeline, facts: StoreFacts, now: float,
    *, activity: str | None = None,
) -> RunWhy:  # fmt: skip
    """The reason of every node not ended (pure: state, times and facts at ``now``);
    ``activity``: what the run is doing in words (``keel.runtime.views.activity``)."""
    paused = None
    if state.status is RunStatus.PAUSED:
        by, since, reason = times.paused or (None, None, "")
        paused = Paused(by=by, since=since, reason=reason)
    nodes: list[NodeWhy] = []
    if not is_finished(state.status):
        explainer = _Explainer(state, times, facts, now, paused)
        plan = state.plan
        for node_id in (*plan.graph_nodes, *plan.side_steps):
            nodes.extend(explainer.node(node_id))
    return RunWhy(run_id=record.id, workflow=record.workflow, status=state.status.value,
                  activity=activity, at=now, paused=paused, nodes=nodes, late=state.late,
                  truncated=facts.truncated)  # fmt: skip


class _Explainer:
    """The rules, over one run's state and facts."""

    def __init__(
        self, state: RunState, times: Timeline, facts: StoreFacts, now: float,
        paused: Paused | None,
    ) -> None:  # fmt: skip
        self.state, self.plan, self.times, self.facts = state, state.plan, times, facts
        self.now, self.paused = now, paused
        self.rows: dict[Place, QueuedAttempt] = {}
        for attempt in facts.ready:
            self.rows[(attempt.ready.node, attempt.ready.item)] = attempt
        self.queued = QueuedRules(state, times, facts, now, paused)

    def node(self, node_id: str) -> list[NodeWhy]:
        node = self.state.nodes[node_id]
        status = node.status
        if status in ENDED or (status is NodeStatus.WAITING and node_id in self.plan.side_steps):
            return []  # ended, or a failure-path step that did not come
        if status is NodeStatus.WAITING:
            return [NodeWhy(node=node_id, status=status.value, reason=self._waiting(node_id))]
        if status is NodeStatus.AWAITING:
            return [NodeWhy(node=node_id, status=status.value, reason=self._awaiting(node_id))]
        if node.item_count is not None:
            return self._map(node_id, node)
        row = self.rows.get((node_id, None))
        if row is not None:
            return [self.queued.attempt(node_id, None, status.value, row)]
        if node.failed_attempt:  # its retry waits for a slot, or for the run's pause
            return [NodeWhy(node=node_id, status=status.value, reason=self._unscheduled())]
        if self.facts.truncated:
            return []
        stalled = Stalled(detail="its attempt is not on the ready queue")
        return [NodeWhy(node=node_id, status=status.value, reason=stalled)]

    # --- nodes that have not started ------------------------------------------------------

    def _waiting(self, node_id: str) -> Reason:
        state = self.state
        if state.status is RunStatus.FAILING:
            reason, failed = state.failure or ("the run is failing", None)
            return RunFailing(reason=reason, node=failed)
        pending = [parent for parent in self.plan.nodes[node_id].parents
                   if state.nodes[parent].status not in ENDED]  # fmt: skip
        return WaitsForParents(parents=pending) if pending else self._unscheduled()

    def _unscheduled(self) -> Reason:
        """Why work that may start now (a node whose parents ended, a retry, a map's
        next items) has no attempt on the queue."""
        if self.paused is not None:
            return self.paused
        if not self.state.has_room():
            assert self.plan.max_parallel is not None
            return RunParallelFull(limit=self.plan.max_parallel, out=self.state.out)
        return Stalled(detail="it may start, but nothing scheduled it")

    def _awaiting(self, node_id: str) -> Reason:
        state, node = self.state, self.state.nodes[node_id]
        if self.paused is not None and any(pending == node_id for pending, _ in state.to_resolve):
            return self.paused  # what ends the wait came; the run acts on it when unpaused
        wait, details = self.plan.nodes[node_id].wait, node.details or {}
        since = self.times.opened_at.get(node_id)
        if isinstance(wait, ApprovalNode) or "asked" in details:  # or a task's attempt asked
            return WaitsForApproval(
                title=details.get("title"), assignees=list(details.get("assignees") or []),
                role=details.get("role"), since=since, due=node.until,
            )  # fmt: skip
        if isinstance(wait, TimerNode):
            return WaitsForTimer(until=node.until)
        if isinstance(wait, SignalNode):
            return WaitsForSignal(name=wait.signal, since=since, timeout_at=node.until)
        child = str(details.get("run_id", ""))
        found = self.facts.children.get(child)
        return WaitsForChildRun(run_id=child, workflow=details.get("workflow"),
                                status=None if found is None else found.status)  # fmt: skip

    def _map(self, node_id: str, node: NodeState) -> list[NodeWhy]:
        """A map's items out (each its own attempt), those whose retry waits, and the
        items not scheduled yet."""
        found: list[NodeWhy] = []
        for (row_node, item), row in self.rows.items():
            if row_node == node_id and item is not None:
                status = "running" if node.items_open.get(item) else "scheduled"
                found.append(self.queued.attempt(node_id, item, status, row))
        for item in sorted(node.items_failed):
            if (node_id, item) not in self.rows:
                found.append(NodeWhy(node=node_id, item=item, status="scheduled",
                                     reason=self._unscheduled()))  # fmt: skip
        assert node.item_count is not None
        left = node.item_count - node.next_item
        if left > 0:
            limit = self.plan.nodes[node_id].max_parallel
            reason: Reason
            if limit is not None and node.items_out >= limit:
                reason = MapParallelFull(limit=limit, out=node.items_out, left=left)
            else:
                reason = self._unscheduled()
            found.append(NodeWhy(node=node_id, status=node.status.value, reason=reason))
        return found
