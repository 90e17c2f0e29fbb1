"""What a run that has not ended is doing right now, in words, for ``keel runs`` and
``keel show``: its status says *running* whether a worker executes it, its attempts sit
on the queue with no worker to take them, or it waits for a person or a time.

It is read from the store's live rows, not the history: the attempts held by workers
(``leases``), the attempts on the queue (``ready_count``) and the open waits (``waits``).
A run that has none of them and has not ended is stalled: nothing will move it. So it
says only what those rows show: an attempt on the queue that no worker holds *waits*
for a worker; whether one took it before (and gave it back, or died) is in the history,
and ``keel why`` says it.
"""

from __future__ import annotations

from dataclasses import dataclass

from keel.store.protocol import Store
from keel.store.records import RunRecord

#: run statuses for which there is something to say
ACTIVE = ("pending", "running", "failing")


@dataclass(frozen=True, slots=True)
class Activity:
    #: ``running`` (a worker holds an attempt), ``queued`` (attempts wait, none is held),
    #: ``waiting`` (only waits are open), ``stalled`` (nothing is held, queued or open)
    kind: str
    #: in words: "running on host:1234", "queued, waiting for a worker",
    #: "waiting for approval", "running on host:1234; waiting for timer"...
    text: str

    @property
    def short(self) -> str:
        """The gist, for a list of runs: what ``text`` says first, without the host."""
        first = self.text.split("; ")[0]
        return "running" if self.kind == "running" else first.split(" (")[0].split(":")[0]


def _worker(owner: str) -> str:
    """``host:pid`` of a lease owner (``host:pid:thread:nonce``)."""
    return ":".join(owner.split(":")[:2])


def run_activity(store: Store, record: RunRecord, now: float) -> Activity | None:
    """What the run is doing now; None for a run that ended or is paused (its status
    says it all)."""
    if record.status not in ACTIVE:
        return None
    leases = store.leases(record.id)
    queued = store.ready_count(record.id) - len(leases)
    waits = store.waits(run_id=record.id)
    parts: list[str] = []
    live = [lease for lease in leases if lease.expires_at >= now]
    if live:
        workers = sorted({_worker(lease.owner) for lease in live})
        where = workers[0] if len(workers) == 1 else f"{len(workers)} workers"
        parts.append(f"running on {where}")
    if len(live) < len(leases):
        parts.append("held by a worker that stopped (its lease expired; another takes it)")
    if queued > 0 and not leases:
        parts.append("queued, waiting for a worker")
    elif queued > 0:
        parts.append(f"{queued} more queued")
    if waits:
        kinds = sorted({wait.waits_for for wait in waits}, key=_wait_order)
        parts.append("waiting for " + ", ".join(_WAIT_WORDS.get(k, k) for k in kinds))
    if live:
        kind = "running"
    elif leases or queued > 0:
        kind = "queued"
    elif waits:
        kind = "waiting"
    else:
        return Activity("stalled", "stalled: nothing is running, queued or waiting")
    return Activity(kind, "; ".join(parts))


_WAIT_WORDS = {"subworkflow": "child run"}


def _wait_order(kind: str) -> int:
    order = ("approval", "signal", "timer", "subworkflow")
    return order.index(kind) if kind in order else len(order)
