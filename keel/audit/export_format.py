"""The audit export's format, shared by its writer (``keel.audit.export``) and its
offline verifier (``keel.audit.verify_export``): line types, how a line is written, and
the human-readable fields derived from an event's stored payload.

An export is JSON Lines, one object a line, each with a ``type``:

- ``header`` first: the format and its version, when, what was selected, keel's version;
- ``key``: a public key an export carries (trust in it is the verifier's to give);
- ``checkpoint``: a signed checkpoint of run heads (``keel.audit.records.Checkpoint``);
- per run: ``run`` (its row: id, workflow, version, status, times, head), its ``event``
  lines in order, then its ``tombstone`` (a pruned run), ``blob`` and ``model_call``
  lines;
- ``end`` last: the count of lines per type and the SHA-256 of every byte before it.

An ``event`` line carries the payload text exactly as stored and hashed, with its
``seq``, ``at`` and ``prev_hash``: what the chain is recomputed from. Its other fields
(``kind``, ``who``, ``inputs``...) are for people and spreadsheets; ``event_fields``
derives them from the payload, so the verifier recomputes them and flags a line whose
fields disagree with its payload instead of trusting them.

Invariant: ``dumps`` is the only way a line is written, and it is deterministic, so the
verifier can require every line to be exactly ``dumps`` of what it parsed (a byte that
changes nothing JSON sees, such as spacing, is still a change).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

FORMAT = "keel-audit-export"
VERSION = 1

#: the fields of each line type, in the order they are written (``model_call`` lines
#: carry the ledger's columns besides ``type`` and ``run_id``, as they are)
HEADER_FIELDS = ("type", "format", "version", "exported_at", "exported_iso", "keel_version",
                 "selection")  # fmt: skip
KEY_FIELDS = ("type", "key_id", "key")
CHECKPOINT_FIELDS = ("type", "id", "at", "at_iso", "by", "heads", "signature")
RUN_FIELDS = ("type", "run_id", "workflow", "spec_version", "status", "created_at",
              "created_iso", "ended_at", "ended_iso", "started_by", "parent_run",
              "last_seq", "head_hash")  # fmt: skip
EVENT_FIELDS = ("type", "run_id", "seq", "at", "at_iso", "prev_hash", "payload", "kind",
                "node", "attempt", "item", "who", "inputs", "outputs")  # fmt: skip
TOMBSTONE_FIELDS = ("type", "run_id", "workflow", "status", "created_at", "ended_at",
                    "last_seq", "head_hash", "pruned_at", "by", "counts", "signature")  # fmt: skip
BLOB_FIELDS = ("type", "name", "size", "text")
END_FIELDS = ("type", "lines", "digest")

#: the line types of a run's section, after its ``run`` line
RUN_SECTION = ("event", "tombstone", "blob", "model_call")
LINE_TYPES = ("header", "key", "checkpoint", "run", *RUN_SECTION, "end")

#: a stored event that refers to blobs (large values kept apart, by content) lists the
#: paths of its references in ``$blobs``; each reference is ``{"$blob": NAME, "size": N}``
#: where NAME is ``sha256:`` and the SHA-256 hex of the blob's text (UTF-8)
BLOB_PATHS = "$blobs"
BLOB_REF = "$blob"
BLOB_ALGORITHM = "sha256:"

_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(line: dict[str, Any]) -> str:
    """A line as written: compact JSON in the order given, and the newline."""
    return _LINE.encode(line) + "\n"


def iso(at: float | None) -> str | None:
    """A time as UTC ISO 8601 to the microsecond (``2026-01-31T09:00:00.000000Z``)."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def event_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """What a person reads of an event: its kind and node, the attempt and map item,
    who did it (a person's or token's ``by``, the worker that ran an attempt, the trigger
    that started a run), what went in (a run's input, an attempt's arguments, a signal's
    or an approval's data) and what came out (an output, an error)."""
    kind = payload.get("kind")
    return {
        "kind": kind,
        "node": payload.get("node"),
        "attempt": payload.get("attempt"),
        "item": payload.get("item"),
        "who": _who(payload),
        "inputs": _inputs(kind, payload),
        "outputs": _outputs(kind, payload),
    }


def _who(payload: dict[str, Any]) -> str | None:
    for name in ("by", "worker"):
        if payload.get(name):
            return str(payload[name])
    trigger = payload.get("trigger")
    if isinstance(trigger, dict) and trigger.get("kind"):
        return f"{trigger['kind']}:{trigger.get('source', '')}"
    return None


def _inputs(kind: Any, payload: dict[str, Any]) -> Any:
    if kind == "run_started":
        return payload.get("input")
    if kind == "node_scheduled":
        return payload.get("args")
    if kind in ("signal_received", "approval_decided"):
        return payload.get("data")
    return None


def _outputs(kind: Any, payload: dict[str, Any]) -> Any:
    if "output" in payload:
        return payload["output"]
    if kind == "node_failed":
        return {"error": payload.get("error")}
    return None


def blob_name(text: str) -> str:
    """The name of a blob whose content is ``text``."""
    return BLOB_ALGORITHM + hashlib.sha256(text.encode("utf-8")).hexdigest()


def blob_refs(payload: dict[str, Any]) -> set[str]:
    """The names of the blobs a stored event refers to: at the paths its ``$blobs``
    lists (a path that leads to no reference names none)."""
    found: set[str] = set()
    paths = payload.get(BLOB_PATHS)
    for path in paths if isinstance(paths, list) else []:
        value: Any = payload
        for step in path if isinstance(path, list) else []:
            value = value.get(step) if isinstance(value, dict) else None
        ref = value.get(BLOB_REF) if isinstance(value, dict) else None
        if isinstance(ref, str):
            found.add(ref)
    return found
