"""What keel signs, as data: checkpoints of run heads, tombstones of pruned runs, and
approval decisions. One module, so the signer (the store's side, the runtime) and the
offline verifier (``keel audit verify`` of an export) build the very same signed bytes.

Each ``*_signed_data`` function returns the exact object whose canonical JSON is signed
(``keel.audit.signing.signed_bytes``); a ``kind`` tag in it means a signature made for
one purpose never verifies as another (a tombstone's signature is not a checkpoint's).
Changing what a function returns breaks every signature made before: add a new ``kind``
(and keep reading the old one) instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from keel.audit.signing import PublicKey, Signature, SigningKey, verify_signature
from keel.store.chain import canonical_json
from keel.store.heads import RunHead as RunHead  # the store reads and keeps heads

CHECKPOINT = "keel.checkpoint/1"
TOMBSTONE = "keel.tombstone/1"
APPROVAL = "keel.approval/1"


def data_hash(value: Any) -> str:
    """SHA-256 of a value's canonical JSON: what a signature covers of a payload that may
    be large (an approval's data)."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The heads of runs at a moment, signed: nothing recorded up to these heads can be
    changed afterwards without the signature failing, even by someone who rewrote a
    whole chain in the database."""

    at: float
    by: str | None
    heads: tuple[RunHead, ...]
    signature: Signature
    #: the store's number for it (None before it is stored)
    id: int | None = None

    def signed_data(self) -> dict[str, Any]:
        return checkpoint_signed_data(self.at, self.by, self.heads)

    def to_data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "by": self.by,
            "heads": {h.run_id: {"seq": h.last_seq, "head": h.head_hash} for h in self.heads},
            "signature": self.signature.to_data(),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Checkpoint:
        heads = tuple(
            RunHead(run_id, int(head["seq"]), str(head["head"]))
            for run_id, head in sorted(dict(data["heads"]).items())
        )
        return cls(
            at=float(data["at"]),
            by=data.get("by"),
            heads=heads,
            signature=Signature.from_data(data["signature"]),
            id=data.get("id"),
        )


def checkpoint_signed_data(at: float, by: str | None, heads: tuple[RunHead, ...]) -> dict[str, Any]:
    return {
        "kind": CHECKPOINT,
        "at": float(at),
        "by": by,
        "heads": {h.run_id: {"seq": h.last_seq, "head": h.head_hash} for h in heads},
    }


def sign_checkpoint(
    key: SigningKey, at: float, by: str | None, heads: tuple[RunHead, ...]
) -> Checkpoint:
    heads = tuple(sorted(heads, key=lambda h: h.run_id))
    return Checkpoint(at, by, heads, key.sign(checkpoint_signed_data(at, by, heads)))


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What is left of a run whose payloads were pruned: enough to prove what it was
    (its head, which a checkpoint may have signed) and how much was removed."""

    run_id: str
    workflow: str
    status: str
    created_at: float
    ended_at: float | None
    last_seq: int
    head_hash: str
    pruned_at: float
    by: str | None
    #: what was removed, by kind: ``events``, ``model_calls``, ``log_lines``, ``blobs``
    counts: dict[str, int] = field(default_factory=dict)
    signature: Signature | None = None

    def signed_data(self) -> dict[str, Any]:
        return {
            "kind": TOMBSTONE,
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "created_at": float(self.created_at),
            "ended_at": None if self.ended_at is None else float(self.ended_at),
            "last_seq": self.last_seq,
            "head_hash": self.head_hash,
            "pruned_at": float(self.pruned_at),
            "by": self.by,
            "counts": dict(sorted(self.counts.items())),
        }

    def to_data(self) -> dict[str, Any]:
        """What is signed and the signature: how the store keeps a tombstone."""
        signature = None if self.signature is None else self.signature.to_data()
        return {**self.signed_data(), "signature": signature}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Tombstone:
        signature = data.get("signature")
        ended = data.get("ended_at")
        return cls(
            run_id=str(data["run_id"]),
            workflow=str(data["workflow"]),
            status=str(data["status"]),
            created_at=float(data["created_at"]),
            ended_at=None if ended is None else float(ended),
            last_seq=int(data["last_seq"]),
            head_hash=str(data["head_hash"]),
            pruned_at=float(data["pruned_at"]),
            by=data.get("by"),
            counts={str(k): int(v) for k, v in dict(data.get("counts") or {}).items()},
            signature=None if signature is None else Signature.from_data(signature),
        )


def approval_signed_data(
    run_id: str,
    node: str,
    approved: bool,
    by: str,
    data: Any,
    comment: str,
    at: float,
) -> dict[str, Any]:
    """What a person's decision signs: who decided what on which run and node, when,
    with the hash of the data they gave (the data itself is in the event)."""
    return {
        "kind": APPROVAL,
        "run_id": run_id,
        "node": node,
        "approved": approved,
        "by": by,
        "data_hash": data_hash(data),
        "comment_hash": data_hash(comment),
        "at": float(at),
    }


def check_signed(
    data: Any, signature: Signature | None, keys: Mapping[str, PublicKey]
) -> str | None:
    """None when ``signature`` is a trusted key's over ``data``; what is wrong otherwise
    (no signature at all is a problem: a record that must be signed and is not)."""
    if signature is None:
        return "it is not signed"
    return verify_signature(data, signature, keys)
