"""The state of a whole store at a glance (the dashboard's overview): runs by status,
throughput, failure rate and durations per workflow, the queues, the waiting runs, the
workers, the late runs and the alerts firing.

Every number is an aggregate the store computes from an index, never a read per run:
``count_runs`` (the same selection as the runs list a number links to: runs created in
the window link with ``created_after``, runs that ended in it with ``ended_after``),
``ended_runs`` (what the ``failure_rate`` and ``p95_duration`` alert rules read, so the
page and the alerts cannot disagree: the same runs, those that succeeded or failed),
``gauges`` (what ``/metrics`` serves), ``throughput``, ``live_workers`` and
``lease_owners``, ``alert_states``. Its cost grows with the deployed workflows (two
reads each: its ended runs counted by status, then those that succeeded or failed
sorted once for both quantiles) and the runs of the window, not with histories.

The window is whole steps (hours) ending with the one ``now`` is in, so its start, a
filter of the links, stays the same for a step and a count shown is the count the
linked list finds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from keel.store.alerts import AlertState, EndedRuns
from keel.store.deployments import current_versions
from keel.store.gauges import StoreGauges
from keel.store.presence import LIVE_WITHIN, WorkerRecord
from keel.store.protocol import Store
from keel.store.summaries import Throughput

#: the overview's window: 24 steps of an hour
STEP = 3600.0
STEPS = 24
#: the statuses of runs not ended, in the order they are shown
ACTIVE = ("pending", "running", "failing", "paused")
#: every status, in the order they are shown
STATUSES = (*ACTIVE, "succeeded", "failed", "cancelled")


def window_start(now: float, step: float = STEP, steps: int = STEPS) -> float:
    """The start of the window of ``steps`` whole steps whose last holds ``now``."""
    return (math.floor(now / step) - steps + 1) * step


@dataclass(frozen=True, slots=True)
class WorkflowHealth:
    """One workflow's runs that ended in the window: how many with each final status
    (what the runs list filtered by the workflow and ``ended_after`` counts), and of
    those that succeeded or failed (as its alert rules read them) the failure rate
    and the durations."""

    workflow: str
    #: final status -> runs that ended with it in the window (``count_runs``)
    ended_by_status: dict[str, int]
    #: the runs that succeeded or failed in the window (``ended_runs``; a cancelled run
    #: tells nothing of a workflow's health), their durations (end less creation) at
    #: the median and the 95th percentile
    judged: EndedRuns
    p95: float | None

    @property
    def ended(self) -> int:
        """Runs that ended in the window, whatever their final status."""
        return sum(self.ended_by_status.values())

    @property
    def failed(self) -> int:
        return self.ended_by_status.get("failed", 0)

    @property
    def p50(self) -> float | None:
        return self.judged.durations[0]

    @property
    def failure_rate(self) -> float | None:
        return None if not self.judged.count else self.judged.failed / self.judged.count


@dataclass(frozen=True, slots=True)
class Overview:
    now: float
    #: the window's start (a filter of the links: ``created_after``)
    since: float
    #: runs by status, all of them, and those created in the window
    statuses: dict[str, int]
    window_statuses: dict[str, int]
    #: the runs that ended in the window, all workflows together
    ended: EndedRuns
    workflows: list[WorkflowHealth]
    gauges: StoreGauges
    workers: list[WorkerRecord]
    #: the workers holding an attempt now
    busy: frozenset[str]
    #: late runs not ended, by status
    late: dict[str, int]
    alerts_firing: list[AlertState] = field(default_factory=list)
    #: runs started and ended per step (None when not asked for: it changes slowly)
    throughput: Throughput | None = None

    @property
    def failure_rate(self) -> float | None:
        return None if not self.ended.count else self.ended.failed / self.ended.count

    @property
    def late_total(self) -> int:
        return sum(self.late.values())


def workflow_health(store: Store, workflow: str, since: float) -> WorkflowHealth:
    """A workflow's ended runs since ``since``: by status (what its link lists), and of
    those that succeeded or failed the failure rate, median and p95 duration (both
    quantiles from one read of the ended runs)."""
    ended = store.count_runs(workflow=workflow, ended_after=since)
    judged = store.ended_runs(since, workflow=workflow, quantiles=(0.5, 0.95))
    return WorkflowHealth(workflow, ended, judged, judged.durations[1])


def window_throughput(store: Store, now: float) -> Throughput:
    """The runs started and ended per step of the window ``now`` is in."""
    return store.throughput(window_start(now), STEP, STEPS)


def overview(store: Store, now: float, *, with_throughput: bool = True) -> Overview:
    """The store at ``now``; ``with_throughput``: also the runs per step (two reads more)."""
    since = window_start(now)
    statuses = store.count_runs()
    late = store.count_runs(late=True)
    names = sorted(current_versions(store.deployments()))
    return Overview(
        now=now,
        since=since,
        statuses=statuses,
        window_statuses=store.count_runs(created_after=since),
        ended=store.ended_runs(since),
        workflows=[workflow_health(store, name, since) for name in names],
        gauges=store.gauges(now, now - LIVE_WITHIN),
        workers=store.live_workers(now - LIVE_WITHIN),
        busy=frozenset(store.lease_owners()),
        late={status: count for status, count in late.items() if status in ACTIVE},
        alerts_firing=[state for state in store.alert_states() if state.state == "firing"],
        throughput=window_throughput(store, now) if with_throughput else None,
    )
