"""The audit vocabulary of a run: every fact that can happen to it, as immutable events.

A run's history is an append-only list of events (the store adds a per-run sequence
number and the time it was recorded; the engine never reads a clock). Everything else
about a run (its state, the dashboard, the audit export) is derived from this list.

``Event`` is the tagged union of every event class: each is a frozen dataclass with a
``kind`` tag (its name in stored JSON), so code can ``match`` on them and mypy knows the
cases. Events about one node share the base ``NodeEvent`` (``node``), and those about
one attempt of a node or of one map item share ``AttemptEvent`` (``attempt``,
``item``); the events that end a run share ``RunEnded``. They turn into JSON with
``to_data`` / ``from_data``; nothing is pickled. Stored histories are read back by
``from_data`` forever: change a field only with a way to read the old shape, and record
a fixture history (``tests/fixtures/histories``) when events change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeAlias

JSON = Any


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What went wrong in an attempt, kept as data (type name, message, traceback)."""

    type: str
    message: str
    traceback: str = ""
    retryable: bool = True
    #: seconds the next attempt must wait at least (a rate-limited API said so)
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class BaseEvent:
    """What every event has: its ``kind``, the tag that names it in stored JSON."""

    kind: ClassVar[str] = "event"


@dataclass(frozen=True, slots=True)
class NodeEvent(BaseEvent):
    """An event about one node of the run (a graph node or a failure-path step)."""

    node: str


@dataclass(frozen=True, slots=True)
class AttemptEvent(NodeEvent):
    """An event about one attempt of a node, or of one item of a map (``item``: its
    index; ``None`` for the node itself)."""

    attempt: int
    item: int | None = field(default=None, kw_only=True)


@dataclass(frozen=True, slots=True)
class RunEnded(BaseEvent):
    """An event that ends the run (until someone retries it by hand)."""


@dataclass(frozen=True, slots=True)
class RunStarted(BaseEvent):
    kind: ClassVar[str] = "run_started"
    workflow: str
    spec_version: str
    input: JSON
    #: a child run: ``{"run_id": ..., "node": ...}`` of the parent run and node waiting for it
    parent: dict[str, str] | None = None
    #: the identity that started the run through the API (a token's name); None for a
    #: run started by code, the CLI on the database, or a parent run
    by: str | None = None
    #: what started it without a person: ``{"kind": "schedule"|"webhook"|"event"|"file"|
    #: "completion", "source": ..., "key": ...}`` (the schedule and slot, the hook and
    #: delivery id, the event and message id, the folder and file, the finished run)
    trigger: dict[str, str] | None = None
    #: the run's trace context (``keel.runtime.tracing.context``): ``trace_id`` and the
    #: run span's ``span_id`` (hex), its ``flags``, and the ``parent_id`` of the span that
    #: started it (a ``traceparent`` received, a parent run) when there was one
    trace: dict[str, str] | None = None
    #: a fork (``keel fork``): ``{"run": ..., "node": ...}``, the run it was forked from
    #: and the node it runs again from (with what follows it); its history then
    #: records, as ``NodeReused``, the outputs it took from that run
    fork: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class NodeScheduled(AttemptEvent):
    """One attempt of a node (or of one item of a map) was put on the ready queue."""

    kind: ClassVar[str] = "node_scheduled"
    args: dict[str, JSON]
    #: a retry waits for its backoff: the attempt may not start before this time
    not_before: float | None = None


@dataclass(frozen=True, slots=True)
class NodeStarted(AttemptEvent):
    kind: ClassVar[str] = "node_started"
    worker: str


@dataclass(frozen=True, slots=True)
class NodeReclaimed(AttemptEvent):
    """An attempt's lease holder died or stopped renewing; the same attempt is queued again.

    The attempt keeps its number (and so its idempotency key): it never reported an
    outcome, so running it again is the "at least once" half of the delivery promise.
    """

    kind: ClassVar[str] = "node_reclaimed"
    owner: str
    reason: str


@dataclass(frozen=True, slots=True)
class NodeSucceeded(AttemptEvent):
    kind: ClassVar[str] = "node_succeeded"
    output: JSON


@dataclass(frozen=True, slots=True)
class NodeFailed(AttemptEvent):
    kind: ClassVar[str] = "node_failed"
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class NodeSkipped(NodeEvent):
    """A node will not run: its condition was false or its join rule did not pass."""

    kind: ClassVar[str] = "node_skipped"
    reason: str
    upstream_failed: bool = False


@dataclass(frozen=True, slots=True)
class MapExpanded(NodeEvent):
    """A map node's items were computed; one unit of work per item follows."""

    kind: ClassVar[str] = "map_expanded"
    count: int


@dataclass(frozen=True, slots=True)
class RunCompleted(RunEnded):
    kind: ClassVar[str] = "run_completed"
    output: JSON


@dataclass(frozen=True, slots=True)
class RunFailing(BaseEvent):
    """The run will fail, but first runs its failure path: compensations of the nodes
    that succeeded, in reverse order of completion, then its failure handler. Nothing
    new is started; attempts already running are waited for (a booking that succeeds
    now must be undone too), and queued ones are withdrawn."""

    kind: ClassVar[str] = "run_failing"
    reason: str
    node: str | None = None


@dataclass(frozen=True, slots=True)
class NodeWithdrawn(AttemptEvent):
    """A queued attempt that had not started was taken off the queue: the run is failing."""

    kind: ClassVar[str] = "node_withdrawn"
    reason: str


@dataclass(frozen=True, slots=True)
class RunDeadlineExceeded(BaseEvent):
    """The run's deadline passed before it ended (recorded when its timer fired)."""

    kind: ClassVar[str] = "run_deadline_exceeded"
    deadline: float


@dataclass(frozen=True, slots=True)
class RunLate(BaseEvent):
    """The run passed its expected duration (``expected`` seconds from its start, or
    from its last retry by hand) and had not ended; recorded when its timer fired. It
    goes on: only the deadline stops a run."""

    kind: ClassVar[str] = "run_late"
    expected: float


@dataclass(frozen=True, slots=True)
class RunFailed(RunEnded):
    kind: ClassVar[str] = "run_failed"
    reason: str
    node: str | None = None
    #: nodes whose compensation failed (their effects may remain: look at them)
    compensation_failed: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunRetried(BaseEvent):
    """Someone resumed a failed run by hand (``keel retry``): ``nodes`` run again, with
    new attempt numbers; what succeeded and is not downstream of them is kept."""

    kind: ClassVar[str] = "run_retried"
    by: str
    nodes: list[str]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class NodeSetByHand(NodeEvent):
    """Someone marked a node done with an output of their choosing (``keel skip``)."""

    kind: ClassVar[str] = "node_set_by_hand"
    output: JSON
    by: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class NodeReused(NodeEvent):
    """A fork took this node's recorded output from the run it was forked from, instead
    of running it: ``from_run``'s event ``from_seq`` recorded it. ``args``: what the node
    was given there (a compensation of the fork gets them). ``compensated``: that run
    undid the node's effect already, so the fork never undoes it again."""

    kind: ClassVar[str] = "node_reused"
    output: JSON
    from_run: str
    from_seq: int
    args: dict[str, JSON] | None = None
    compensated: bool = False


@dataclass(frozen=True, slots=True)
class RunForked(BaseEvent):
    """Someone started a new run (``run_id``) from this one (``keel fork``): it reuses
    the outputs recorded here of every node not after ``node``, which it runs again.
    Recorded on a run that has ended: nothing here changes."""

    kind: ClassVar[str] = "run_forked"
    run_id: str
    node: str
    by: str
    #: the new run's spec version (another than this run's with ``--version``)
    version: str


@dataclass(frozen=True, slots=True)
class LateResultDiscarded(AttemptEvent):
    """An attempt that had already been failed for its timeout finished after all (a
    thread cannot be stopped); what it produced was discarded, and is recorded here."""

    kind: ClassVar[str] = "late_result_discarded"
    outcome: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class NodeAwaiting(NodeEvent):
    """A node now waits for something outside the run: a person (approval), a time
    (timer), a named signal, or a child run. Nothing runs and no worker is held;
    ``until`` is when its timer fires (a timer's time, a wait's timeout), if it has one.
    ``details`` say what it waits for (an approval's title and filled-in description,
    a child run's id and input...)."""

    kind: ClassVar[str] = "node_awaiting"
    attempt: int
    waits_for: str
    details: dict[str, JSON]
    until: float | None = None


@dataclass(frozen=True, slots=True)
class ApprovalDecided(NodeEvent):
    """Someone approved (with the form's ``data``) or rejected an approval."""

    kind: ClassVar[str] = "approval_decided"
    approved: bool
    by: str
    data: JSON = None
    comment: str = ""
    #: the decision signed where it was made (``keel.audit.approvals``): ``at`` (the
    #: time signed) and the signature's ``algorithm``, ``key_id`` and ``value``; None
    #: when no signing key was configured there
    signature: dict[str, JSON] | None = None


@dataclass(frozen=True, slots=True)
class ApprovalOverdue(NodeEvent):
    """An approval passed its timeout; its ``on_timeout`` is ``notify``: the workflow's
    notifiers are told, and it goes on waiting."""

    kind: ClassVar[str] = "approval_overdue"
    timeout: float


@dataclass(frozen=True, slots=True)
class SignalReceived(BaseEvent):
    """A named signal was delivered to the run; the first signal node waiting for that
    name (now or later: it is kept until one does) takes its ``data`` as output."""

    kind: ClassVar[str] = "signal_received"
    name: str
    data: JSON
    by: str = ""


@dataclass(frozen=True, slots=True)
class TimerFired(NodeEvent):
    """A waiting node's timer fired: a timer node's time came, or a wait timed out."""

    kind: ClassVar[str] = "timer_fired"
    attempt: int


@dataclass(frozen=True, slots=True)
class ChildRunEnded(NodeEvent):
    """The child run a subworkflow node waits for has ended."""

    kind: ClassVar[str] = "child_run_ended"
    run_id: str
    status: str
    output: JSON = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RunPaused(BaseEvent):
    """Someone paused the run: nothing new is scheduled until it is unpaused; attempts
    already running finish and are recorded; approvals, signals and timers that come
    meanwhile are recorded and acted on at unpause."""

    kind: ClassVar[str] = "run_paused"
    by: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RunUnpaused(BaseEvent):
    kind: ClassVar[str] = "run_unpaused"
    by: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RunCancelled(RunEnded):
    kind: ClassVar[str] = "run_cancelled"
    reason: str = ""
    by: str = ""


#: every event: code that takes an ``Event`` can ``match`` each case
Event: TypeAlias = (
    RunStarted | NodeScheduled | NodeStarted | NodeReclaimed | NodeSucceeded | NodeFailed
    | NodeSkipped | MapExpanded | RunCompleted | RunFailed | RunCancelled | RunFailing
    | NodeWithdrawn | RunDeadlineExceeded | RunRetried | NodeSetByHand | LateResultDiscarded
    | NodeAwaiting | ApprovalDecided | ApprovalOverdue | SignalReceived | TimerFired
    | ChildRunEnded | RunPaused | RunUnpaused | RunLate | NodeReused | RunForked
)  # fmt: skip

EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted, NodeScheduled, NodeStarted, NodeReclaimed, NodeSucceeded, NodeFailed,
        NodeSkipped, MapExpanded, RunCompleted, RunFailed, RunCancelled, RunFailing,
        NodeWithdrawn, RunDeadlineExceeded, RunRetried, NodeSetByHand, LateResultDiscarded,
        NodeAwaiting, ApprovalDecided, ApprovalOverdue, SignalReceived, TimerFired,
        ChildRunEnded, RunPaused, RunUnpaused, RunLate, NodeReused, RunForked,
    )
}  # fmt: skip


def node_of(event: Event) -> str | None:
    """The node an event names: a ``NodeEvent``'s node, the node whose failure makes the
    run fail (``RunFailing``, ``RunFailed``), or the one a fork ran again from
    (``RunForked``). The store keeps it in a column beside the event, and ``keel
    history --node`` lists the events that name the node."""
    match event:
        case NodeEvent(node=node) | RunFailing(node=node) | RunFailed(node=node):
            return node
        case RunForked(node=node):
            return node
    return None


_FIELD_NAMES: dict[type[Event], tuple[str, ...]] = {
    cls: tuple(item.name for item in fields(cls)) for cls in EVENT_TYPES.values()
}

#: the same, as sets: what ``from_data`` checks a stored event's fields against
_FIELD_SETS: dict[type[Event], frozenset[str]] = {
    cls: frozenset(names) for cls, names in _FIELD_NAMES.items()
}


#: fields added after histories were recorded with their event: written only when they
#: differ from their default, so an old event written again is the text that was stored
#: (and hashed); ``from_data`` gives a missing one its default
_LATER_FIELDS: dict[type[Event], dict[str, JSON]] = {
    RunStarted: {"by": None, "trigger": None, "trace": None, "fork": None},
    ApprovalDecided: {"signature": None},
}


def to_data(event: Event) -> dict[str, JSON]:
    """Plain JSON-able data with the ``kind`` tag.

    Shallow on purpose: payloads (outputs, arguments) are JSON data already and are only
    read by the encoder, so copying them (as ``asdict`` does) would cost a walk of every
    output on the hot path. The one nested dataclass, ``ErrorInfo``, is converted.
    """
    data: dict[str, JSON] = {name: getattr(event, name) for name in _FIELD_NAMES[type(event)]}
    error = data.get("error")
    if isinstance(error, ErrorInfo):
        data["error"] = asdict(error)
        if error.retry_after is None:  # written only when set: older histories lack it
            del data["error"]["retry_after"]
    later = _LATER_FIELDS.get(type(event))
    if later is not None:
        for name, default in later.items():
            if data[name] == default:
                del data[name]
    data["kind"] = event.kind
    return data


def from_data(data: dict[str, JSON]) -> Event:
    """The event ``to_data`` produced; unknown kinds or fields are errors, not guesses."""
    values = dict(data)
    kind = values.pop("kind", None)
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event kind {kind!r}")
    if not _FIELD_SETS[cls].issuperset(values):
        unknown = sorted(set(values) - _FIELD_SETS[cls])
        raise ValueError(f"event {kind} has unknown fields: {', '.join(unknown)}")
    if cls is NodeFailed and isinstance(values.get("error"), dict):
        values["error"] = ErrorInfo(**values["error"])
    return cls(**values)
