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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from keel.audit.approvals import ApprovalCheck
from keel.audit.records import Checkpoint, check_signed, sign_checkpoint
from keel.audit.signing import PublicKey, Signature, SigningError, SigningKey
from keel.errors import InputError
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

    @property
    def failed_runs(self) -> list[str]:
        seen = dict.fromkeys(run for run, _ in self.run_problems)
        seen.update(dict.fromkeys(run for run, _ in self.approvals.problems))
        return list(seen)

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
        signed = [link for link in links if link.seq <= head.last_seq]
        for problem in _head_problems(stored, head, signed):
            found.run_problems.append((head.run_id, problem))
        found.approvals.add(head.run_id, links, keys)
    return found


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
        "approvals": {
            "signed": check.approvals.signed,
            "unsigned": check.approvals.unsigned,
            "problems": [{"run_id": run, "problem": p} for run, p in check.approvals.problems],
        },
    }
