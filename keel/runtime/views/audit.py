"""Whether what the ``runs`` table says of a run is what its history says.

The history is the truth (its hash chain proves it was not edited); the run's row is a
summary derived from it, kept for listing runs quickly. ``keel verify`` checks the chain
and then this: a row whose status, output, reason, input or late flag differs from the
history's would make ``keel runs`` and the API say something that did not happen.
The blobs its events name (large values, ``keel.store.blobs``) are checked with the
chain: each must be there and hash to its name. A pruned run (``keel prune``) has
neither left: its tombstone is what is checked.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from keel.audit.history import checked_history
from keel.audit.pruned import PrunedCheck, check_pruned
from keel.audit.signing import PublicKey
from keel.engine.state import RunState, is_finished
from keel.runtime.audit_key import AuditConfigError, load_audit_config
from keel.store.chain import ChainReport
from keel.store.protocol import Store
from keel.store.records import RunRecord


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def summary_mismatches(record: RunRecord, state: RunState) -> list[str]:
    """How the run's row differs from the state its history replays to (none: agree)."""
    finished = is_finished(state.status)
    expected: dict[str, Any] = {
        "status": state.status.value,
        "output": state.output if finished else None,
        "reason": state.reason if finished else None,
        "input": state.input,
        "late": state.late,
    }
    found: dict[str, Any] = {
        "status": record.status, "output": record.output, "reason": record.reason,
        "input": record.input, "late": record.late,
    }  # fmt: skip
    return [
        f"the runs table says {name} {_short(found[name])}, the history says "
        f"{_short(expected[name])}"
        for name in expected
        if not _same(found[name], expected[name])
    ]


def configured_trust() -> dict[str, PublicKey]:
    """The keys this process's audit settings trust (``[audit] trusted_keys`` and the
    signing key's own); none when the settings or the key cannot be read."""
    try:
        return load_audit_config().trusted_keys()
    except AuditConfigError:
        return {}


def pruned_check(
    store: Store, record: RunRecord, keys: Mapping[str, PublicKey] | None = None
) -> PrunedCheck:
    """A pruned run's tombstone checked against its row and signature, with ``keys``
    trusted (None: those of this process's audit settings, ``keel.runtime.audit_key``;
    none when they cannot be read: the signature is then said to be unchecked, not
    wrong)."""
    if keys is None:
        keys = configured_trust()
    left = len(store.chain_links(record.id))
    return check_pruned(record, store.tombstone(record.id), left, keys)


def verify_run(
    store: Store,
    record: RunRecord,
    state_of: Callable[[str], RunState],
    keys: Mapping[str, PublicKey] | None = None,
) -> tuple[ChainReport, list[str]]:
    """``keel verify`` of one run: its hash chain and the blobs it names, then its row
    against its history (replayed by ``state_of``, e.g. ``RunCache.state``). A
    definition that no longer loads (altered) is one more problem of the chain. A
    pruned run has no chain left: its tombstone is checked instead (``pruned_check``),
    with ``keys`` trusted."""
    if record.pruned_at is not None:
        check = pruned_check(store, record, keys)
        return pruned_report(record, check), []
    report, blobs = checked_history(store, record)
    if blobs:
        report = dataclasses.replace(report, problems=(*report.problems, *blobs))
    mismatches: list[str] = []
    try:
        store.load_spec(record.spec_version)
        if not blobs:  # else the history cannot be read whole: its blobs are the problem
            mismatches = summary_mismatches(record, state_of(record.id))
    except Exception as exc:  # a damaged history or definition: report it, never raise
        report = dataclasses.replace(report, problems=(*report.problems, str(exc)))
    return report, mismatches


def pruned_report(record: RunRecord, check: PrunedCheck) -> ChainReport:
    """A pruned run's check as a chain's: no events left, the head its row keeps."""
    return ChainReport(record.id, 0, record.head_hash, check.problems)
