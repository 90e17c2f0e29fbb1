"""Retention in the store: which runs may be pruned, what pruning one removes, and the
tombstone kept in its place (``Store.prune_candidates``, ``prune_runs``, ``tombstone``).

The store does not sign: the tombstone comes to ``prune_runs`` made (and signed) by
``keel.audit.retention``, which it satisfies as ``Tombstoned``; the store keeps it as
JSON (``to_data``) and gives it back as such (``StoredTombstone``). What it checks,
under the lock of the runs it prunes, is that each tombstone still describes its run:
the run ended, is not pruned, has no parent or child still going, and its head and the
counts of what would be removed are the tombstone's. A run that moved on since the
tombstone was made is left as it is (not pruned), never pruned under a wrong tombstone.

Invariant: a run is pruned (its rows removed, its row's payloads cleared, ``pruned_at``
set) in the same transaction that writes its tombstone, so a crash leaves it either
pruned with its tombstone or untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from keel.errors import RunPrunedError
from keel.store.records import RunRecord

#: the statuses of a run that ended: only these are pruned
ENDED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class PruneCounts:
    """What pruning a run removes: its events, its tasks' log lines, its LLM ledger rows
    (model and tool calls), and the bytes of all their payloads and of the run's input
    and output (as stored: JSON text)."""

    events: int = 0
    log_lines: int = 0
    model_calls: int = 0
    bytes: int = 0

    def to_data(self) -> dict[str, int]:
        return {"events": self.events, "log_lines": self.log_lines,
                "model_calls": self.model_calls, "bytes": self.bytes}  # fmt: skip

    def __add__(self, other: PruneCounts) -> PruneCounts:
        return PruneCounts(self.events + other.events, self.log_lines + other.log_lines,
                           self.model_calls + other.model_calls,
                           self.bytes + other.bytes)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PruneCandidate:
    """An ended run, not pruned yet, and what pruning it would remove. ``kept_by``: why
    it may not be pruned now (a parent or child run still going), None when it may."""

    run: RunRecord
    counts: PruneCounts
    kept_by: str | None = None


class Tombstoned(Protocol):
    """What ``prune_runs`` needs of a tombstone (``keel.audit.records.Tombstone``): the
    run and the head it describes, and the counts it claims were removed, to check
    against the run; its JSON, to keep."""

    @property
    def run_id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def last_seq(self) -> int: ...

    @property
    def head_hash(self) -> str: ...

    @property
    def pruned_at(self) -> float: ...

    @property
    def counts(self) -> Mapping[str, int]: ...

    def to_data(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class StoredTombstone:
    """A tombstone as the store keeps it: the run, when it was pruned, and the
    tombstone's JSON (``keel.audit.records.Tombstone.from_data`` reads it)."""

    run_id: str
    pruned_at: float
    data: dict[str, Any]


def still_fits(tombstone: Tombstoned, run: RunRecord, counts: PruneCounts) -> bool:
    """Whether ``tombstone`` still describes ``run`` and what pruning it removes now."""
    return (
        run.pruned_at is None
        and run.status in ENDED
        and run.status == tombstone.status
        and (run.last_seq, run.head_hash) == (tombstone.last_seq, tombstone.head_hash)
        and {k: int(v) for k, v in tombstone.counts.items()} == counts.to_data()
    )


def pruned_words(run: RunRecord) -> str:
    """Why nothing can be done to a pruned run any more, in words (``RunPrunedError``)."""
    when = "" if run.pruned_at is None else " on " + utc_text(run.pruned_at)
    return (f"run {run.id} was pruned{when}: its history is gone, only its tombstone is "
            f"left (see `keel show {run.id[:8]}`)")  # fmt: skip


def refuse_pruned(run: RunRecord) -> None:
    """``RunPrunedError`` (``pruned_words``) when ``run`` was pruned: with its history
    gone, whatever would be read from it would be wrong (an empty history reads as a run
    not started)."""
    if run.pruned_at is not None:
        raise RunPrunedError(pruned_words(run))


def utc_text(at: float) -> str:
    """A moment as a UTC date and time to the second: ``2026-03-01 12:00:00 UTC``."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
