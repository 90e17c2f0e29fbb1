"""Tamper evidence: each event of a run stores the SHA-256 of the event before it.

The hash of an event covers its run, sequence number, time and canonical JSON payload
plus the previous hash, so editing, removing or reordering any stored event breaks the
chain at that point, and removing events from the end no longer matches the head kept on
the run. Someone able to rewrite the whole database can rebuild a consistent chain:
publish or export the head hash (``keel verify`` prints it) to anchor it outside.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keel.engine.events import Event, to_data

#: the "previous hash" of a run's first event
GENESIS = "0" * 64


#: one encoder for every call: ``json.dumps`` with options builds a new one each time,
#: which costs as much as encoding a small event
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(data: Any) -> str:
    """Sorted keys, no spaces, no NaN: the same data always gives the same text."""
    return _CANONICAL.encode(data)


def event_json(event: Event) -> str:
    return canonical_json(to_data(event))


def link_hash(prev_hash: str, run_id: str, seq: int, at: float, payload: str) -> str:
    """The hash the next event stores as its ``prev_hash``."""
    return hashlib.sha256(
        f"{prev_hash}\n{run_id}\n{seq}\n{float(at)!r}\n{payload}".encode()
    ).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainLink:
    """One stored event as the verifier sees it: what is stored, not what it means."""

    seq: int
    at: float
    payload: str
    prev_hash: str
    #: the columns stored beside the payload for queries; they must agree with it
    kind: str | None = None
    node: str | None = None


@dataclass(frozen=True, slots=True)
class ChainReport:
    run_id: str
    events: int
    head_hash: str
    problems: tuple[str, ...]

    @property
    def intact(self) -> bool:
        return not self.problems


def _columns_agree(link: ChainLink) -> bool:
    try:
        data = json.loads(link.payload)
    except ValueError:
        return False
    return isinstance(data, dict) and (data.get("kind"), data.get("node")) == (link.kind, link.node)


def verify_chain(
    run_id: str, links: Sequence[ChainLink], last_seq: int, head_hash: str
) -> ChainReport:
    """Check every link, and that the last one matches the run's recorded head."""
    problems: list[str] = []
    expected_prev = GENESIS
    expected_seq = 1
    for link in links:
        if link.seq != expected_seq:
            problems.append(f"event {link.seq}: expected sequence number {expected_seq}")
        if link.prev_hash != expected_prev:
            problems.append(
                f"event {link.seq}: previous-hash does not match event {link.seq - 1} "
                "(that event was edited, removed or moved)"
            )
        if link.kind is not None and not _columns_agree(link):
            problems.append(f"event {link.seq}: its kind/node columns disagree with its data")
        expected_prev = link_hash(link.prev_hash, run_id, link.seq, link.at, link.payload)
        expected_seq = link.seq + 1
    stored = len(links)
    history_ends = links[-1].seq if links else 0
    if history_ends != last_seq:
        problems.append(
            f"the run records {last_seq} events but its history ends at {history_ends} "
            "(events were removed from the end)"
        )
    elif expected_prev != head_hash and links:
        problems.append(f"event {links[-1].seq}: does not match the run's recorded head hash")
    return ChainReport(run_id, stored, expected_prev, tuple(problems))
