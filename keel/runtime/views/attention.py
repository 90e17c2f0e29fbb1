"""What needs a person now (the dashboard's *needs attention*): failed runs grouped by
error type and failed node, runs that stopped making progress with the reason ``keel
why`` gives, late runs, approvals past their time, open circuits, alerts firing.

Bounded whatever the store holds: the failures are one grouped read
(``Store.failure_groups``, each group's count the one its filtered list finds); the
stuck runs are the quietest few of the runs that should move on by themselves and
have not changed for ``QUIET`` seconds (``Store.quiet_runs``: by the time their row
changed, runs waiting by design left out, so an old stuck run is found however many
runs wait for a person), and only those few are explained (``run_why`` reads a history
each); the late runs and the overdue approvals are lists with a limit, counted by
aggregates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from keel.engine.plan import Plan
from keel.runtime.views.why import run_why
from keel.runtime.views.why_reasons import MOVING, WAITS, NodeWhy, RunWhy
from keel.store.alerts import AlertState
from keel.store.protocol import Store
from keel.store.records import CircuitState, RunRecord, Wait
from keel.store.summaries import FailureGroup

#: a run not ended whose row has not changed for this long is looked at as maybe stuck
QUIET = 300.0
#: quiet runs read when looking for stuck ones, and the most explained
CANDIDATES = 50
EXPLAINED = 10
#: the most rows of a list shown (late runs, overdue approvals, failure groups)
SHOWN = 50
#: statuses of a run that is expected to move on by itself
MOVING_STATUSES = ("pending", "running", "failing")
#: statuses of a run not ended
ACTIVE = (*MOVING_STATUSES, "paused")


@dataclass(frozen=True, slots=True)
class StuckRun:
    """A run that has not moved for a while, and what holds it (its first node held by
    something other than its own turn or a wait by design)."""

    record: RunRecord
    why: RunWhy
    held: NodeWhy

    @property
    def quiet_since(self) -> float:
        return self.record.updated_at


@dataclass(frozen=True, slots=True)
class Attention:
    now: float
    failures: list[FailureGroup]
    #: failed runs in all (the sum of every group, groups past ``SHOWN`` included)
    failed: int
    stuck: list[StuckRun]
    #: runs looked at for being stuck (quiet for ``QUIET`` seconds)
    quiet: int
    #: late runs not ended, by status, and the newest of them
    late: dict[str, int]
    late_runs: list[RunRecord]
    #: approvals past their time (count, and the oldest of them)
    overdue: int
    overdue_approvals: list[Wait]
    #: circuits open or half-open now, and those that counted failures but are closed
    circuits: list[CircuitState] = field(default_factory=list)
    alerts_firing: list[AlertState] = field(default_factory=list)

    @property
    def late_total(self) -> int:
        return sum(self.late.values())


def held_node(why: RunWhy) -> NodeWhy | None:
    """The first node held by something other than its turn or a wait by design (an
    approval, a timer, a signal, a child run: the reason a run waits, not is stuck)."""
    for node in why.nodes:
        if node.reason.kind not in MOVING and node.reason.kind not in WAITS:
            return node
    return None


def stuck_runs(
    store: Store, plan_of: Callable[[str], Plan], now: float, *, quiet: float = QUIET
) -> tuple[list[StuckRun], int]:
    """The runs that should move on by themselves (no open wait) whose row has not
    changed for ``quiet`` seconds, quietest first, each with what holds it (those only
    taking their turn are left out); and how many quiet runs were read. At most
    ``CANDIDATES`` runs are read (``Store.quiet_runs``) and ``EXPLAINED`` histories."""
    quiet_runs = store.quiet_runs(now - quiet, CANDIDATES)
    stuck: list[StuckRun] = []
    for record in quiet_runs[:EXPLAINED]:
        why = run_why(store, record, plan_of(record.spec_version), now)
        held = held_node(why)
        if held is not None:
            stuck.append(StuckRun(record, why, held))
    return stuck, len(quiet_runs)


def open_circuits(store: Store, now: float) -> list[CircuitState]:
    """Circuits that hold attempts back now: open, or half-open with a probe out."""
    return [c for c in store.circuits()
            if (c.open_until is not None and c.open_until > now)
            or (c.probe_until is not None and c.probe_until > now)]  # fmt: skip


def late_runs(store: Store) -> tuple[dict[str, int], list[RunRecord]]:
    """Late runs not ended: how many by status, and the newest ``SHOWN`` of them."""
    late = {s: n for s, n in store.count_runs(late=True).items() if s in ACTIVE}
    runs: list[RunRecord] = []
    for status in ACTIVE:
        if late.get(status):
            runs.extend(store.list_runs(status=status, late=True, limit=SHOWN))
    runs.sort(key=lambda record: (-record.created_at, record.id))
    return late, runs[:SHOWN]


def overdue_approvals(store: Store, now: float) -> tuple[int, list[Wait]]:
    """Approvals past their time: how many, and the oldest ``SHOWN``."""
    count = store.overdue_approvals(now)
    if not count:
        return 0, []
    waits = store.waits(waits_for="approval", limit=1000)
    return count, [w for w in waits if w.until is not None and w.until <= now][:SHOWN]


def attention(
    store: Store, plan_of: Callable[[str], Plan], now: float, *,
    created_after: float | None = None, with_stuck: bool = True,
) -> Attention:  # fmt: skip
    """What needs attention at ``now``; ``created_after``: only failures of runs
    created then or later; ``with_stuck``: explain the stuck runs (their histories are
    read: a live page asks for it less often)."""
    failed = store.count_runs(status="failed", created_after=created_after).get("failed", 0)
    stuck, quiet = stuck_runs(store, plan_of, now) if with_stuck else ([], 0)
    late, late_list = late_runs(store)
    overdue, approvals = overdue_approvals(store, now)
    return Attention(
        now=now,
        failures=store.failure_groups(created_after=created_after, limit=SHOWN),
        failed=failed,
        stuck=stuck,
        quiet=quiet,
        late=late,
        late_runs=late_list,
        overdue=overdue,
        overdue_approvals=approvals,
        circuits=open_circuits(store, now),
        alerts_firing=[state for state in store.alert_states() if state.state == "firing"],
    )
