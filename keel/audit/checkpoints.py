"""Signed checkpoints of run heads: making one, and checking the database against one.

A checkpoint signs, with a key the database never holds, the head (last sequence
number and link hash) of every run (or of one workflow's) at a moment. Checking it
recomputes each covered run's chain from its stored events up to the signed sequence
number: someone who edited an event and rewrote every later link and the run's head
consistently passes ``keel verify`` (the chain is intact), but not this check, as the
recomputed head is no longer the one signed. The checkpoint's own signature must be by
a trusted key, so a checkpoint forged to match a rewritten database fails too. The
approval decisions of the runs checked have their signatures checked on the way
(``keel.audit.approvals``).

A pruned run has no events to recompute: its tombstone (``keel.audit.pruned``) is
compared instead. Pruned at the signed event, its head must be the signed one (else the
history was rewritten, then pruned to hide it); pruned before it, the history shrank;
pruned after further events, what was signed can no longer be compared (a warning).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from keel.audit.approvals import ApprovalCheck
from keel.audit.pruned import check_pruned, pruned_head
from keel.audit.records import Checkpoint, check_signed, sign_checkpoint
from keel.audit.signing import PublicKey, Signature, SigningError, SigningKey
from keel.errors import InputError, RunNotFoundError
from keel.store.chain import ChainLink, verify_chain
from keel.store.heads import CheckpointSummary, RunHead, StoredCheckpoint
from keel.store.protocol import Store


def make_checkpoint(
    store: Store,
    key: SigningKey,
    *,
    at: float,
    by: str | None,
    workflow: str | None = None,
) -> StoredCheckpoint:
    """Sign the heads of every run (or ``workflow``'s) as they are now, and store it."""
    stored = signed_heads(store, key, at=at, by=by, workflow=workflow)
    return replace(stored, id=store.add_checkpoint(stored, key.public_key.to_text()))


def signed_heads(
    store: Store, key: SigningKey, *, at: float, by: str | None, workflow: str | None = None
) -> StoredCheckpoint:
    """The heads of every run (or ``workflow``'s) as they are now, signed; not stored.
    An ``InputError`` for a workflow without runs (a mistyped name signs nothing)."""
    heads = tuple(store.run_heads(workflow))
    if workflow is not None and not heads:
        raise InputError(f"workflow '{workflow}' has no runs to sign (see `keel runs`)")
    signed = sign_checkpoint(key, at, by, heads)
    return StoredCheckpoint(at, by, workflow, signed.signature.to_data(), signed.heads)


def checkpoint_of(stored: StoredCheckpoint) -> Checkpoint:
    """The signed record a stored checkpoint holds (``SigningError``: a malformed
    signature)."""
    return Checkpoint(stored.at, stored.by, stored.heads, Signature.from_data(stored.signature),
                      stored.id)  # fmt: skip


@dataclass
class CheckpointCheck:
    """What checking the database against one checkpoint found."""

    checkpoint: StoredCheckpoint
    #: what is wrong with the checkpoint's own signature (None: a trusted key's)
    signature_problem: str | None = None
    #: (run id, what is wrong): a run no longer as it was signed
    run_problems: list[tuple[str, str]] = field(default_factory=list)
    approvals: ApprovalCheck = field(default_factory=ApprovalCheck)
    #: pruned runs whose tombstone keeps the head signed
    pruned_as_signed: list[str] = field(default_factory=list)
    #: (run id, what cannot be checked): pruned after events the checkpoint did not sign
    run_warnings: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed_runs(self) -> list[str]:
        seen = dict.fromkeys(run for run, _ in self.run_problems)
        seen.update(dict.fromkeys(run for run, _ in self.approvals.problems))
        return list(seen)

    @property
    def changed_runs(self) -> list[str]:
        """The runs whose history is not what was signed (not counting signatures)."""
        return list(dict.fromkeys(run for run, _ in self.run_problems))

    @property
    def ok(self) -> bool:
        return (self.signature_problem is None and not self.run_problems
                and not self.approvals.problems)  # fmt: skip


def check_checkpoint(
    store: Store, stored: StoredCheckpoint, keys: Mapping[str, PublicKey]
) -> CheckpointCheck:
    """Check ``stored``'s signature against ``keys`` and every run it covers against the
    database's events now."""
    found = CheckpointCheck(stored)
    try:
        checkpoint = checkpoint_of(stored)
    except SigningError as exc:
        found.signature_problem = f"its signature is malformed ({exc})"
    else:
        found.signature_problem = check_signed(checkpoint.signed_data(), checkpoint.signature,
                                               keys)  # fmt: skip
    for head in stored.heads:
        links = store.chain_links(head.run_id)
        if not links and _check_pruned(store, stored, head, keys, found):
            continue
        signed = [link for link in links if link.seq <= head.last_seq]
        for problem in _head_problems(stored, head, signed):
            found.run_problems.append((head.run_id, problem))
        found.approvals.add(head.run_id, links, keys)
    return found


def _check_pruned(
    store: Store,
    stored: StoredCheckpoint,
    head: RunHead,
    keys: Mapping[str, PublicKey],
    found: CheckpointCheck,
) -> bool:
    """Check a run with no events left against its tombstone (see the module); False
    when the run is not a pruned one (its history is simply gone)."""
    try:
        record = store.get_run(head.run_id)
    except RunNotFoundError:
        return False
    if record.pruned_at is None:
        return False
    check = check_pruned(record, store.tombstone(head.run_id), 0, keys)
    run_id, tombstone = head.run_id, check.tombstone
    found.run_problems += [(run_id, f"its tombstone: {problem}") for problem in check.problems]
    if tombstone is None:
        return True
    verdict = pruned_head(tombstone.last_seq, tombstone.head_hash, head.last_seq, head.head_hash)
    if verdict == "shrank":
        found.run_problems.append((run_id, (
            f"pruned at event {tombstone.last_seq}, but checkpoint {stored.id} signed "
            f"{head.last_seq} events: the history shrank before it was pruned")))  # fmt: skip
    elif verdict == "later":
        found.run_warnings.append((run_id, (
            f"pruned at event {tombstone.last_seq}: events up to {tombstone.last_seq} were "
            f"removed; what checkpoint {stored.id} signed (up to event {head.last_seq}) can "
            "no longer be compared")))  # fmt: skip
    elif verdict == "rewritten":
        found.run_problems.append((run_id, (
            f"pruned with a head other than the one signed: its tombstone keeps "
            f"{tombstone.head_hash[:16]}..., checkpoint {stored.id} signed "
            f"{head.head_hash[:16]}... (the history was rewritten, then pruned)")))  # fmt: skip
    elif check.intact:
        found.pruned_as_signed.append(run_id)
    return True


def _head_problems(stored: StoredCheckpoint, head: RunHead, links: list[ChainLink]) -> list[str]:
    """What is wrong with a run's first ``head.last_seq`` stored events against the head
    the checkpoint signed."""
    if not links:
        return [f"its history is gone: checkpoint {stored.id} signed {head.last_seq} events"]
    report = verify_chain(head.run_id, links, head.last_seq, head.head_hash)
    problems = [p for p in report.problems if "recorded head hash" not in p]
    if not problems and report.head_hash != head.head_hash:
        problems.append(
            f"events 1-{head.last_seq} are not what checkpoint {stored.id} signed: they hash "
            f"to {report.head_hash[:16]}..., the signed head is {head.head_hash[:16]}... "
            "(the history was rewritten since, its chain recomputed)"
        )
    return problems


def summary_document(summary: CheckpointSummary) -> dict[str, Any]:
    """A stored checkpoint as the CLI's ``--json`` and the API give it (without heads)."""
    return {"id": summary.id, "at": summary.at, "by": summary.by, "workflow": summary.workflow,
            "key_id": summary.key_id, "runs": summary.runs}  # fmt: skip


def checkpoint_document(stored: StoredCheckpoint) -> dict[str, Any]:
    """A stored checkpoint whole: what was signed (``checkpoint_of(...).to_data()``: the
    heads by run id, the signature), with what the store keeps beside it."""
    return {**checkpoint_of(stored).to_data(), "workflow": stored.workflow,
            "key_id": stored.key_id, "runs": len(stored.heads)}  # fmt: skip


def check_document(check: CheckpointCheck) -> dict[str, Any]:
    """What ``check_checkpoint`` found, as data."""
    return {
        **summary_document(check.checkpoint.summary()),
        "ok": check.ok,
        "signature_problem": check.signature_problem,
        "failed_runs": check.failed_runs,
        "run_problems": [{"run_id": run, "problem": p} for run, p in check.run_problems],
        "run_warnings": [{"run_id": run, "warning": w} for run, w in check.run_warnings],
        "pruned_as_signed": check.pruned_as_signed,
        "approvals": {
            "signed": check.approvals.signed,
            "unsigned": check.approvals.unsigned,
            "problems": [{"run_id": run, "problem": p} for run, p in check.approvals.problems],
        },
    }
