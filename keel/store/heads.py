"""What the store keeps for signed checkpoints: run heads, checkpoints as stored, and
the public keys that signed.

The store never signs or checks a signature (``keel.audit`` does, with keys the
database never holds); it keeps what was signed, as given. A checkpoint's heads are
stored as one compressed value (``pack_heads``): a checkpoint is only ever verified
whole, and one value of a few megabytes for 100,000 runs is written and read in one
go, where a row per head would be 100,000 rows per checkpoint.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from keel.errors import StoreError
from keel.store.chain import canonical_json


@dataclass(frozen=True, slots=True)
class RunHead:
    """Where a run's history stood: its last event and that event's link hash."""

    run_id: str
    last_seq: int
    head_hash: str


@dataclass(frozen=True, slots=True)
class CheckpointSummary:
    """A stored checkpoint without its heads (a listing)."""

    id: int
    at: float
    #: who made it (the OS user, the API token's name, the worker that signed it)
    by: str | None
    #: the workflow whose runs it covers; None: every run
    workflow: str | None
    #: the key that signed it
    key_id: str
    #: how many runs it covers
    runs: int


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A checkpoint as kept: the heads and the signature over them, as given."""

    at: float
    by: str | None
    workflow: str | None
    #: the ``Signature``'s data (``algorithm``, ``key_id``, ``value``)
    signature: Mapping[str, str]
    heads: tuple[RunHead, ...]
    id: int | None = None

    @property
    def key_id(self) -> str:
        return str(self.signature.get("key_id", ""))

    def summary(self) -> CheckpointSummary:
        assert self.id is not None, "a checkpoint has an id once stored"
        return CheckpointSummary(self.id, self.at, self.by, self.workflow, self.key_id,
                                 len(self.heads))  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuditKey:
    """A public key that signed something in this database (``ed25519:...`` text)."""

    key_id: str
    public_key: str
    first_used: float


def pack_heads(heads: Iterable[RunHead]) -> bytes:
    """The heads as stored: zlib of the canonical JSON of ``[[run_id, seq, head], ...]``
    in run id order."""
    rows = sorted([h.run_id, h.last_seq, h.head_hash] for h in heads)
    return zlib.compress(canonical_json(rows).encode("utf-8"), 1)  # level 6: 3% less, 3x slower


def unpack_heads(packed: bytes, checkpoint_id: int) -> tuple[RunHead, ...]:
    """What ``pack_heads`` stored; a ``StoreError`` naming the checkpoint when the value
    is not that (damaged, or written by something else)."""
    try:
        rows = json.loads(zlib.decompress(bytes(packed)).decode("utf-8"))
        return tuple(RunHead(str(run), int(seq), str(head)) for run, seq, head in rows)
    except (zlib.error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise StoreError(
            f"checkpoint {checkpoint_id}: its stored heads cannot be read ({exc})"
        ) from None
