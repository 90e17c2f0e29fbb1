"""What is left of a pruned run, checked: its tombstone against its row and signature.

A pruned run has no events left, so its hash chain cannot be walked; what proves it is
its tombstone: signed over the run's head (last event number and hash) and the counts
of what was removed. ``check_pruned`` finds it intact when the tombstone reads, names
the run, has the same head (and workflow and status) as the run's row, no event is left
after the prune, and its signature is by a trusted key. A tombstone pruned without a key
(``keel prune --unsigned``) is intact but said to be unsigned; a signed one checked
where no key is configured is said to be unchecked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from keel.audit.records import Tombstone
from keel.audit.signing import PublicKey, SigningError, verify_signature
from keel.store.records import RunRecord
from keel.store.tombstones import StoredTombstone

#: what is known of a tombstone's signature
VALID, INVALID, UNSIGNED, UNCHECKED = "valid", "invalid", "unsigned", "unchecked"


@dataclass(frozen=True, slots=True)
class PrunedCheck:
    """A pruned run checked: its tombstone (None: missing or unreadable), what is wrong
    (nothing: intact), and what is known of its signature."""

    tombstone: Tombstone | None
    problems: tuple[str, ...]
    signature: str

    @property
    def intact(self) -> bool:
        return not self.problems


def read_tombstone(stored: StoredTombstone | None) -> Tombstone | None:
    """The tombstone kept for a run; None when there is none or it does not read."""
    if stored is None:
        return None
    try:
        return Tombstone.from_data(stored.data)
    except (KeyError, TypeError, ValueError, SigningError):
        return None


def check_pruned(
    record: RunRecord,
    stored: StoredTombstone | None,
    events_left: int,
    keys: Mapping[str, PublicKey],
) -> PrunedCheck:
    """``keel verify`` of a pruned run (``record.pruned_at`` set): see the module."""
    if stored is None:
        return PrunedCheck(None, ("the run is marked pruned but has no tombstone",), INVALID)
    tombstone = read_tombstone(stored)
    if tombstone is None:
        return PrunedCheck(None, ("its tombstone does not read as one",), INVALID)
    problems: list[str] = []
    said: dict[str, tuple[Any, Any]] = {
        "run": (tombstone.run_id, record.id),
        "workflow": (tombstone.workflow, record.workflow),
        "status": (tombstone.status, record.status),
        "last event": (tombstone.last_seq, record.last_seq),
        "head hash": (tombstone.head_hash, record.head_hash),
    }
    for name, (kept, found) in said.items():
        if kept != found:
            problems.append(f"the tombstone says {name} {kept}, the runs table {found}")
    if events_left:
        problems.append(f"{events_left} events are left after the prune")
    signature = _signature_state(tombstone, keys, problems)
    return PrunedCheck(tombstone, tuple(problems), signature)


def _signature_state(
    tombstone: Tombstone, keys: Mapping[str, PublicKey], problems: list[str]
) -> str:
    if tombstone.signature is None:
        return UNSIGNED
    if not keys:
        return UNCHECKED
    wrong = verify_signature(tombstone.signed_data(), tombstone.signature, keys)
    if wrong is not None:
        problems.append(f"tombstone: {wrong}")
        return INVALID
    return VALID


#: a pruned run's head against a signed one: pruned at the signed event with the head
#: signed, or another (the history was rewritten, then pruned); pruned before it (the
#: history shrank); pruned after it (what was signed cannot be compared any more)
PrunedHead = Literal["as_signed", "rewritten", "shrank", "later"]


def pruned_head(
    pruned_seq: object, pruned_hash: object, signed_seq: int, signed_hash: str
) -> PrunedHead:
    """A tombstone's head (``pruned_seq``, ``pruned_hash``: as read, so of any type)
    against the head a checkpoint signed (see ``PrunedHead``); a ``pruned_seq`` that
    is not a number counts as later, what was signed being past comparing."""
    if pruned_seq == signed_seq:
        return "as_signed" if pruned_hash == signed_hash else "rewritten"
    if isinstance(pruned_seq, int) and pruned_seq < signed_seq:
        return "shrank"
    return "later"


def pruned_document(check: PrunedCheck) -> dict[str, Any]:
    """A pruned run's tombstone as the API and ``--json`` give it (``pruned``)."""
    tombstone = check.tombstone
    if tombstone is None:
        return {"intact": False, "signature": check.signature, "problems": list(check.problems)}
    signer = None if tombstone.signature is None else tombstone.signature.key_id
    return {
        "pruned_at": tombstone.pruned_at, "by": tombstone.by, "counts": dict(tombstone.counts),
        "last_seq": tombstone.last_seq, "head_hash": tombstone.head_hash,
        "signed_by": signer, "signature": check.signature, "intact": check.intact,
        "problems": list(check.problems),
    }  # fmt: skip
