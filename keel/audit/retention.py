"""Pruning old runs (``keel prune``): their payloads go, a signed tombstone stays.

A prune walks the ended runs older than a cutoff (``Store.prune_candidates``), a batch
at a time (``BATCH`` runs), and for each batch makes one tombstone per run (its
workflow, status, times, head and the counts of what is removed, signed with the audit
key, or unsigned when the operator chose so) and hands them to ``Store.prune_runs``,
which prunes each run in the transaction that keeps its tombstone. So a prune of 100,000
runs never holds one huge transaction, and a prune killed midway leaves every run either
pruned with its tombstone or untouched: running it again finishes the job.

A run whose history does not verify (its hash chain against its recorded head, its
blobs against their names) is held back too, never tombstoned: a tombstone signed over a
damaged or tampered history would vouch for it, and the events that show the damage
would go. A run whose parent or child run is still going is held back (``kept``); a run that moved
on between the read and the prune (retried by hand, say) is left as it is
(``changed``). A dry run reads the same batches and removes nothing.

After the last batch, the blobs (large values kept apart from events,
``keel.store.blobs``) that no event or run names any more go, in one more transaction
(``Store.sweep_blobs``, a mark and sweep). Not per batch: a blob is shared by content,
and one sweep of the whole store costs the same as one of a batch. Every prune sweeps,
even one that pruned no run, so a prune stopped before its sweep leaves its blobs to the
next. A dry run counts the blobs that pruning its runs would leave unnamed
(``Store.blobs_to_sweep``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from keel.audit.history import checked_history
from keel.audit.records import Tombstone
from keel.audit.signing import SigningKey
from keel.store.protocol import Store
from keel.store.records import RunRecord
from keel.store.tombstones import PruneCandidate, PruneCounts

#: runs pruned per transaction
BATCH = 500


@dataclass
class PruneReport:
    """What a prune did (or, dry, would do): the runs pruned and the sum of what was
    removed from them, the runs held back and why, the runs that changed meanwhile,
    and the blobs that nothing named any more and their bytes."""

    dry_run: bool
    pruned: list[str] = field(default_factory=list)
    counts: PruneCounts = field(default_factory=PruneCounts)
    kept: list[tuple[str, str]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    batches: int = 0
    blobs: int = 0
    blob_bytes: int = 0

    def to_data(self) -> dict[str, object]:
        return {"dry_run": self.dry_run, "runs": len(self.pruned), **self.counts.to_data(),
                "pruned": self.pruned, "batches": self.batches,
                "blobs": self.blobs, "blob_bytes": self.blob_bytes,
                "kept": [{"run_id": run_id, "why": why} for run_id, why in self.kept],
                "changed": self.changed}  # fmt: skip


def make_tombstone(
    candidate: PruneCandidate, at: float, by: str | None, key: SigningKey | None
) -> Tombstone:
    """The tombstone of ``candidate`` pruned ``at`` by ``by``, signed with ``key`` (None:
    unsigned)."""
    run = candidate.run
    unsigned = Tombstone(
        run_id=run.id, workflow=run.workflow, status=run.status, created_at=run.created_at,
        ended_at=run.ended_at, last_seq=run.last_seq, head_hash=run.head_hash,
        pruned_at=at, by=by, counts=candidate.counts.to_data(),
    )  # fmt: skip
    if key is None:
        return unsigned
    return dataclasses.replace(unsigned, signature=key.sign(unsigned.signed_data()))


def history_problem(store: Store, run: RunRecord) -> str | None:
    """What is wrong with a run's stored history (the first problem, and how many more),
    checked as ``keel verify`` does; None when it verifies."""
    chain, blobs = checked_history(store, run)
    problems = list(chain.problems) or blobs
    if not problems:
        return None
    more = len(problems) - 1
    return problems[0] + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def prune(
    store: Store,
    ended_before: float,
    *,
    now: Callable[[], float],
    key: SigningKey | None,
    by: str | None = None,
    workflow: str | None = None,
    dry_run: bool = False,
    batch: int = BATCH,
    progress: Callable[[PruneReport], None] | None = None,
) -> PruneReport:
    """Prune the runs (of ``workflow``) that ended before ``ended_before``, ``batch`` per
    transaction, each with a tombstone signed by ``key`` (None: unsigned) naming ``by``;
    ``now`` gives each batch's time. ``progress`` sees the report after each batch. Then
    the blobs nothing names any more are removed (dry: counted)."""
    report = PruneReport(dry_run)
    after: tuple[float, str] | None = None
    while True:
        found = store.prune_candidates(ended_before, workflow=workflow, after=after, limit=batch)
        if not found:
            break
        last = found[-1].run
        after = (last.ended_at or 0.0, last.id)
        report.kept += [(c.run.id, c.kept_by) for c in found if c.kept_by is not None]
        taken = {}
        for candidate in (c for c in found if c.kept_by is None):
            problem = history_problem(store, candidate.run)
            if problem is None:
                taken[candidate.run.id] = candidate
            else:
                report.kept.append((candidate.run.id, f"its history does not verify: {problem}"))
        if dry_run:
            done = list(taken)
        else:
            at = now()
            done = store.prune_runs([make_tombstone(c, at, by, key) for c in taken.values()])
            report.changed += sorted(set(taken) - set(done))
        report.pruned += done
        for run_id in done:
            report.counts += taken[run_id].counts
        report.batches += 1
        if progress is not None:
            progress(report)
        if len(found) < batch:
            break
    if dry_run:
        report.blobs, report.blob_bytes = store.blobs_to_sweep(report.pruned)
    else:
        report.blobs, report.blob_bytes = store.sweep_blobs()
    return report
