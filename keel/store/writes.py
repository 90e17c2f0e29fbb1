"""A transition: a run's new events plus the typed writes that go with them, committed in
one transaction.

This is the design's "decide returns commands" made literal. The runtime describes every
change a step of a run makes as one value per write (queue this attempt, set that timer,
open a wait, create a child run...), and the store applies them in one ``match`` that
``assert_never`` keeps exhaustive: a new kind of write is a new class here, a member of
``Write``, and one case in ``keel.store.sqlstore.transitions`` (mypy points at the
place). The order writes are applied in is the store's, not the caller's
(``WRITE_ORDER``), so no caller can get it wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from keel.engine.events import Event
from keel.store.records import (
    CircuitOutcome,
    Claimed,
    Lease,
    Notification,
    Ready,
    StoredEvent,
    Timer,
    Wait,
)
from keel.store.task_logs import AttemptLines

# --- the writes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finish:
    """The attempt this transition records the outcome of: its lease must still be held
    (else the store refuses the transition with ``LeaseLostError``), and is given up."""

    lease: Lease


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Take a queued attempt no worker has started off the queue."""

    node: str
    item: int | None = None


@dataclass(frozen=True, slots=True)
class CountCircuit:
    """Count an attempt's outcome against its circuit breaker."""

    outcome: CircuitOutcome


@dataclass(frozen=True, slots=True)
class Enqueue:
    """Put an attempt on the ready queue (the transition may lease it at once)."""

    ready: Ready


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Arm a durable wake-up; it may be for another run (a child's end, its parent)."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class ClearTimer:
    """Drop one of the run's timers (it fired, or no longer applies)."""

    key: str


@dataclass(frozen=True, slots=True)
class OpenWait:
    """List a node that began to wait for something outside its run."""

    wait: Wait


@dataclass(frozen=True, slots=True)
class CloseWait:
    """Unlist a node that no longer waits."""

    node: str


@dataclass(frozen=True, slots=True)
class CreateChild:
    """Create a child run (a subworkflow node began to wait), with its first transition."""

    spec: Any  # WorkflowSpec (the store saves it with the run)
    input: Any
    first: Transition
    parent_run: str
    parent_node: str


@dataclass(frozen=True, slots=True)
class CreateRun:
    """Create another run, not a child, with its first transition: a fork of this run
    (``keel fork``), so the fork exists exactly when this run's history says so."""

    spec: Any  # WorkflowSpec (the store saves it with the run)
    input: Any
    first: Transition
    origin: str | None = None
    started_by: str | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    """The run was paused (``held``: its queued attempts are out of every claim's reach)
    or unpaused (released again)."""

    held: bool


@dataclass(frozen=True, slots=True)
class Notify:
    """Put a notification in the outbox, to be delivered after the commit."""

    notification: Notification


@dataclass(frozen=True, slots=True)
class SetLate:
    """The run passed its expected duration (``RunLate``), or is on time again (a retry
    by hand gives it its time again): the runs table's ``late`` flag, to list by."""

    late: bool


@dataclass(frozen=True, slots=True)
class KeepLogs:
    """Keep what an attempt's task logged (with its outcome: the lines and the result
    commit together, or neither does)."""

    lines: AttemptLines


@dataclass(frozen=True, slots=True)
class SetStatus:
    """The run's status after these events, with its output or reason when it ended
    (an ended run's queued attempts, timers and waits go with it). A failed run's
    ``failed_node`` and ``error_type`` (why it failed, to list failed runs by) are
    written with it; any other status clears them (a retry by hand)."""

    status: str
    output: Any = None
    reason: str | None = None
    #: the node whose failure failed the run (its ``RunFailed``'s; None: the run failed
    #: as a whole) and the type of that node's last error
    failed_node: str | None = None
    error_type: str | None = None


Write = (
    Finish | Withdraw | CountCircuit | Enqueue | SetTimer | ClearTimer | OpenWait | CloseWait
    | CreateChild | CreateRun | Hold | Notify | SetLate | KeepLogs | SetStatus
)  # fmt: skip
W = TypeVar("W", bound=Write)

#: the order the store applies writes in, whatever order a caller listed them in: leases
#: given up, withdrawals and circuit counts before the events (what the transition then
#: leases must see the places they free and the circuit a failure opens); queued attempts
#: with the events (the transition may lease them); then timers set before timers
#: cleared (a timer that fired is cleared even if the same step set its key again),
#: waits, child runs (whose first transition may set a timer on this run) and forks, the hold
#: (after new attempts are queued, so they are held too), the outbox, the late flag, task
#: logs; the run's status last (an ended run's queue, timers and waits go then). Each kind of
#: write has a rank: ``tests/unit/test_writes.py`` fails when one is missing.
WRITE_ORDER: tuple[type[Write], ...] = (
    Finish, Withdraw, CountCircuit, Enqueue, SetTimer, ClearTimer, OpenWait, CloseWait,
    CreateChild, CreateRun, Hold, Notify, SetLate, KeepLogs, SetStatus,
)  # fmt: skip
_RANK: dict[type[Write], int] = {kind: rank for rank, kind in enumerate(WRITE_ORDER)}
#: the rank of ``Enqueue``: writes ranked below it are applied before the events
WITH_EVENTS = _RANK[Enqueue]


def write_rank(write: Write) -> int:
    """Where ``write`` goes in ``WRITE_ORDER``."""
    return _RANK[type(write)]


# --- the transition -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    """Lease up to ``limit`` attempts of the run to ``owner`` at once, with their
    ``NodeStarted`` events: first the transition's new ones, then ones already queued
    (the next items of a map), so a worker continues a run it just advanced without a
    separate claim: one commit per step instead of two."""

    owner: str
    limit: int
    lease_for: float = 30.0
    #: the queues the owner takes work from (None: every queue)
    queues: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """Everything one step of a run changes, committed in one transaction.

    A transition commits only on top of exactly the state it was decided from:
    ``expected_seq`` is the last sequence number that state reflects and
    ``expected_head`` the hash of that last event; if the run's head is anything else
    (another process appended to it, even as many events), the store refuses with
    ``ConflictError``. ``expected_head`` is None when the caller decided on top of an
    earlier transition of the same run in the same ``commit`` call, whose head it
    cannot know yet: the store refuses it whenever that earlier one was refused. Every
    ``Finish`` lease must still be held, or the store refuses with ``LeaseLostError``:
    that is what keeps a result from being recorded twice.
    """

    run_id: str
    expected_seq: int
    at: float
    events: Sequence[Event]
    writes: Sequence[Write] = ()
    #: lease what the transition makes ready (and what waits queued) to a worker
    lease: LeaseRequest | None = None
    #: the hash of the run's last event in the state this was decided from (see above)
    expected_head: str | None = None

    # built directly: ``dataclasses.replace`` costs as much again, once per step

    def adding(self, *writes: Write) -> Transition:
        return Transition(self.run_id, self.expected_seq, self.at, self.events,
                          (*self.writes, *writes), self.lease, self.expected_head)  # fmt: skip

    def leasing(self, request: LeaseRequest | None) -> Transition:
        return Transition(self.run_id, self.expected_seq, self.at, self.events, self.writes,
                          request, self.expected_head)  # fmt: skip

    def of(self, kind: type[W]) -> list[W]:
        """The transition's writes of one kind, in order."""
        return [write for write in self.writes if isinstance(write, kind)]

    @property
    def enqueued(self) -> list[Ready]:
        return [write.ready for write in self.writes if isinstance(write, Enqueue)]

    @property
    def status(self) -> str | None:
        """The status the transition sets (None: it leaves the status as it is)."""
        statuses = self.of(SetStatus)
        return statuses[-1].status if statuses else None


@dataclass(frozen=True, slots=True)
class Committed:
    """What became of one transition of a group commit: its events, or why it was refused."""

    transition: Transition
    #: the transition's events, then the ``NodeStarted`` of the attempts it leased
    events: list[StoredEvent] = field(default_factory=list)
    error: Exception | None = None
    #: the attempts leased by the transition's ``lease`` request
    claimed: list[Claimed] = field(default_factory=list)
