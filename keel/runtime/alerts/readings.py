"""The value each kind of rule compares, read from the store: one aggregate per rule,
and the store's gauges (``Store.gauges``, the read ``/metrics`` makes) once per
evaluation for every ``queue_age`` and ``late_runs`` rule."""

from __future__ import annotations

from typing import assert_never

from keel.runtime.alerts.rules import (
    AlertRule,
    FailureRate,
    LateRuns,
    OverdueApprovals,
    P95Duration,
    QueueAge,
)
from keel.store.gauges import StoreGauges
from keel.store.protocol import Store


class Readings:
    """The values of one evaluation, all read at ``now``."""

    def __init__(self, store: Store, now: float) -> None:
        self.store = store
        self.now = now
        self._gauges: StoreGauges | None = None

    def value(self, rule: AlertRule) -> float | None:
        """The rule's value now; None: not enough data (fewer runs than ``min_runs``)."""
        now, store = self.now, self.store
        match rule:
            case FailureRate():
                ended = store.ended_runs(now - rule.window, workflow=rule.workflow)
                return None if ended.count < rule.min_runs else ended.failed / ended.count
            case P95Duration():
                ended = store.ended_runs(now - rule.window, workflow=rule.workflow,
                                         quantile=rule.quantile)  # fmt: skip
                return None if ended.count < rule.min_runs else ended.duration
            case QueueAge():
                return self._queue_age(rule.queue)
            case OverdueApprovals():
                return float(store.overdue_approvals(now))
            case LateRuns():
                late = self._store_gauges().late_runs
                count = sum(late.values()) if rule.workflow is None else late.get(rule.workflow, 0)
                return float(count)
            case _:
                assert_never(rule)

    def _store_gauges(self) -> StoreGauges:
        """The store's gauges, read once for every rule of this evaluation."""
        if self._gauges is None:
            self._gauges = self.store.gauges(self.now, self.now)
        return self._gauges

    def _queue_age(self, queue: str | None) -> float:
        """How long the oldest ready attempt (of ``queue``) has waited; 0 when none does."""
        queues = self._store_gauges().queues
        oldest = [found.oldest_ready_at for name, found in queues.items()
                  if queue is None or name == queue]  # fmt: skip
        return max(0.0, self.now - min(oldest)) if oldest else 0.0
