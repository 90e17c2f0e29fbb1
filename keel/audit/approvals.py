"""Approvals signed at decision time, and checking those signatures in a history.

The process where a person decides (``keel approve`` on the database, the server for
the API and the dashboard) signs ``approval_signed_data`` with its configured key, and
the decision's event carries ``{"at": ..., "algorithm": ..., "key_id": ..., "value":
...}`` as its ``signature``. Editing the event's data, comment, decider or node later
(even with the whole chain rehashed) makes that signature fail; so does a signature by a
key the checker does not trust. A decision made without a key configured is unsigned:
reported as such, not as a failure (keel's own decisions, an approval's ``on_timeout:
approve``, are never signed: no person decided).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from keel.audit.records import approval_signed_data, check_signed
from keel.audit.signing import PublicKey, Signature, SigningError, SigningKey
from keel.engine.events import ApprovalDecided, from_data
from keel.store.chain import ChainLink

#: who decides an approval keel decided itself (``on_timeout: approve``)
KEEL = "keel"


def approval_signature(
    key: SigningKey,
    run_id: str,
    node: str,
    approved: bool,
    by: str,
    data: Any,
    comment: str,
    at: float,
) -> dict[str, Any]:
    """What a decision's event keeps as its ``signature``."""
    signed = approval_signed_data(run_id, node, approved, by, data, comment, at)
    return {"at": float(at), **key.sign(signed).to_data()}


def signature_problem(
    run_id: str, event: ApprovalDecided, keys: Mapping[str, PublicKey]
) -> str | None:
    """None when ``event``'s signature is a trusted key's over what it decided; what is
    wrong otherwise (an unsigned event is ``check_signed``'s "not signed")."""
    if event.signature is None:
        return check_signed(None, None, keys)
    try:
        at = float(event.signature["at"])
        signature = Signature.from_data(event.signature)
    except (KeyError, TypeError, ValueError, SigningError) as exc:
        return f"its signature is malformed ({exc})"
    signed = approval_signed_data(run_id, event.node, event.approved, event.by, event.data,
                                  event.comment, at)  # fmt: skip
    return check_signed(signed, signature, keys)


@dataclass
class ApprovalCheck:
    """The approvals of some runs' histories, checked."""

    signed: int = 0
    #: decided by a person without a key configured (a warning, not a failure)
    unsigned: list[str] = field(default_factory=list)
    #: (run id, what is wrong): a signature that fails
    problems: list[tuple[str, str]] = field(default_factory=list)

    def add(self, run_id: str, links: Iterable[ChainLink], keys: Mapping[str, PublicKey]) -> None:
        """Check the decisions among a run's stored events (as stored, undecoded)."""
        for link in links:
            if link.kind != ApprovalDecided.kind and '"approval_decided"' not in link.payload:
                continue
            try:
                event = from_data(json.loads(link.payload))
            except (ValueError, TypeError):
                continue  # not an event keel reads: the chain check reports the edit
            if not isinstance(event, ApprovalDecided):
                continue
            where = f"approval '{event.node}' (event {link.seq}, decided by {event.by})"
            if event.signature is None:
                if event.by != KEEL:
                    self.unsigned.append(f"run {run_id}: {where}")
                continue
            problem = signature_problem(run_id, event, keys)
            if problem is None:
                self.signed += 1
            else:
                self.problems.append((run_id, f"{where}: {problem}"))
