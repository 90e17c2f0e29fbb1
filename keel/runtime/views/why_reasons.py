"""The reasons ``keel why`` gives for a node that has not ended, one model per kind.

Each reason is a frozen pydantic model with a ``kind`` (the discriminator) and the data
that kind needs, so the same value is the Python result of ``Client.why``, the JSON of
``GET /runs/{id}/why`` and ``keel why --json``, and parses back from that JSON on the
HTTP transport. Times are seconds since the epoch on the store's clock; rendering them
in words is the CLI's job. ``RunWhy`` is the whole answer for one run.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field


class _Reason(BaseModel):
    model_config = ConfigDict(frozen=True)


class WaitsForParents(_Reason):
    """Its parents have not all ended."""

    kind: Literal["parents"] = "parents"
    parents: list[str]


class WaitsForApproval(_Reason):
    kind: Literal["approval"] = "approval"
    title: str | None
    assignees: list[str]
    role: str | None
    since: float | None
    #: when its timeout acts (None: no timeout, or it passed and only notified)
    due: float | None


class WaitsForTimer(_Reason):
    kind: Literal["timer"] = "timer"
    until: float | None


class WaitsForSignal(_Reason):
    kind: Literal["signal"] = "signal"
    name: str
    since: float | None
    #: when the wait times out (None: it waits as long as it takes)
    timeout_at: float | None


class WaitsForChildRun(_Reason):
    kind: Literal["child_run"] = "child_run"
    run_id: str
    workflow: str | None
    #: the child run's status now (None: the store has no such run)
    status: str | None


class RetryBackoff(_Reason):
    """A retry waits for its backoff to pass."""

    kind: Literal["retry_backoff"] = "retry_backoff"
    until: float
    #: the attempt waiting (counted since the run was last retried by hand), of how many
    attempt: int
    max_attempts: int
    #: the error of the attempt before (``Type: message``)
    error: str | None


class GaveBack(BaseModel):
    """A worker that took an attempt and gave it back, having no code for its task."""

    model_config = ConfigDict(frozen=True)

    owner: str
    times: int


class NoCode(_Reason):
    """The workers that took it have no code for its task, and gave it back for one
    that has (``keel.runtime.worker.missing_code``): it waits for a worker that loaded
    the task's module. Not a retry: the attempt keeps its number. It fails once the
    worker that takes it finds its first give-back older than that worker's
    ``code_wait`` (a worker setting, 300 s by default, so not known here)."""

    kind: Literal["no_code"] = "no_code"
    task: str
    queue: str
    #: who gave this attempt back, and how often, first giver first
    workers: list[GaveBack]
    #: the first give-back of this attempt: ``code_wait`` counts from it
    since: float
    #: when it may be taken again (None: now)
    next_try: float | None


class AvailableLater(_Reason):
    """Queued, and not to be taken before ``at``, for a cause its history does not
    name (a retry's backoff and a give-back for want of code are said as such)."""

    kind: Literal["available_later"] = "available_later"
    queue: str
    #: when it was queued
    since: float | None
    at: float


class Holder(BaseModel):
    """An attempt holding a concurrency key."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    node: str
    item: int | None
    owner: str


class ConcurrencyFull(_Reason):
    """Its concurrency key is held as often as its limit allows, by these attempts."""

    kind: Literal["concurrency"] = "concurrency"
    key: str
    limit: int
    holders: list[Holder]


class RateLimited(_Reason):
    """Its rate key started ``limit`` attempts in the last ``per`` seconds."""

    kind: Literal["rate_limit"] = "rate_limit"
    key: str
    limit: int
    per: float
    #: when the next start is allowed
    until: float


class CircuitOpen(_Reason):
    """Its circuit breaker is open, or half-open with a probe out."""

    kind: Literal["circuit_open"] = "circuit_open"
    circuit: str
    #: open until then (None: the cool-down passed and a probe is out)
    until: float | None
    failures: int
    #: the probe out holds the circuit until then (None: no probe is out)
    probe_until: float | None


class Paused(_Reason):
    """The run is paused (``keel pause``): nothing new starts until it is unpaused."""

    kind: Literal["paused"] = "paused"
    by: str | None
    since: float | None
    reason: str = ""


class NoLiveWorker(_Reason):
    """Queued, and no live worker takes its queue (nor executes this run). The store
    keeps no row of a worker that stopped cleanly (it removes its own), only of one
    that was killed, until it is forgotten: so whether a worker ever took the queue is
    not known, only when a killed one was last seen."""

    kind: Literal["no_worker"] = "no_worker"
    queue: str
    #: when it was queued
    since: float | None
    #: seconds since it was queued, or since a worker of its queue that the store still
    #: lists was last seen, whichever is later
    for_seconds: float
    #: when a worker of its queue that the store still lists was last seen (None: the
    #: store lists none; workers that stopped cleanly are not listed)
    last_seen: float | None


class Queued(_Reason):
    """Queued, and a live worker takes its queue: it waits for its turn."""

    kind: Literal["queued"] = "queued"
    queue: str
    #: when it was queued (never after the time the reasons were worked out at)
    since: float | None


class LeaseHolderGone(_Reason):
    """Leased to a worker that stopped heartbeating, or whose lease expired: it is
    taken back (``reclaim``) and started again elsewhere."""

    kind: Literal["dead_lease"] = "dead_lease"
    owner: str
    #: when that worker was last seen (None: the store does not list it: it never
    #: listed itself, or it stopped cleanly and removed its row)
    last_seen: float | None
    lease_expires: float | None


class Running(_Reason):
    """A live worker executes it: not stuck."""

    kind: Literal["running"] = "running"
    owner: str
    since: float | None
    lease_expires: float | None


class RunParallelFull(_Reason):
    """The run has as many attempts out as its ``max_parallel`` allows."""

    kind: Literal["run_parallel"] = "run_parallel"
    limit: int
    out: int


class MapParallelFull(_Reason):
    """Items of a map wait for the map's own ``max_parallel``."""

    kind: Literal["map_parallel"] = "map_parallel"
    limit: int
    out: int
    #: items not scheduled yet
    left: int


class RunFailing(_Reason):
    """The run is on its failure path: this node will not start."""

    kind: Literal["run_failing"] = "run_failing"
    reason: str
    node: str | None


class Stalled(_Reason):
    """Nothing the store shows will move it (a fault: see ``keel verify``)."""

    kind: Literal["stalled"] = "stalled"
    detail: str


Reason = Annotated[
    WaitsForParents | WaitsForApproval | WaitsForTimer | WaitsForSignal | WaitsForChildRun
    | RetryBackoff | NoCode | AvailableLater | ConcurrencyFull | RateLimited | CircuitOpen
    | Paused | NoLiveWorker | Queued | LeaseHolderGone | Running | RunParallelFull
    | MapParallelFull | RunFailing | Stalled,
    Field(discriminator="kind"),
]  # fmt: skip

#: kinds that are the run making its way, not something holding it
MOVING = frozenset({"running", "queued", "parents"})
#: kinds that wait for something outside the run by design (``keel show`` says them as
#: "waits for", with the command that ends the wait)
WAITS = frozenset({"approval", "timer", "signal", "child_run"})


class NodeWhy(BaseModel):
    """Why one node (one item of a map) has not ended: ``reason`` first, and ``also``
    what would hold it next once that is gone (a queued attempt under a full
    concurrency key may also have no live worker)."""

    model_config = ConfigDict(frozen=True)

    node: str
    item: int | None = None
    status: str
    reason: Reason
    also: list[Reason] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def stuck(self) -> bool:
        """Whether something other than its own turn holds it."""
        return self.reason.kind not in MOVING


class RunWhy(BaseModel):
    """Why a run has not ended: per node not ended, its reason (none for an ended run)."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    workflow: str
    status: str
    #: what the run is doing, in the words of ``keel runs`` and ``keel show``
    #: (``keel.runtime.views.activity``; None: it ended or is paused)
    activity: str | None = None
    #: the store's time the reasons were worked out at
    at: float
    #: the run is paused: by whom and since when
    paused: Paused | None = None
    #: it is past its workflow's ``expected_duration`` (``RunLate``)
    late: bool = False
    nodes: list[NodeWhy] = []
    #: the run has more attempts on the queue than were read: some are not described
    truncated: bool = False
