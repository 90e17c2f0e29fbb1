"""What verifying an audit export gives back (``keel.audit.verify_export``): the
problems, each with where it is (the file's line, the run, the event), the warnings, and
how much was checked; and the one error that means the file is not an export at all.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from keel.audit.export_format import FORMAT, VERSION
from keel.errors import KeelError


class ExportFormatError(KeelError, ValueError):
    """The file is not a keel audit export this keel reads (nothing in it is checked)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that does not verify, with where: the file's line, the run, the event."""

    text: str
    line: int | None = None
    run_id: str | None = None
    seq: int | None = None

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line is not None else []
        if self.run_id is not None:
            where.append(f"run {self.run_id}")
        if self.seq is not None:
            where.append(f"event {self.seq}")
        return f"{', '.join(where)}: {self.text}" if where else self.text

    def to_data(self) -> dict[str, Any]:
        return {"line": self.line, "run_id": self.run_id, "seq": self.seq,
                "problem": self.text}  # fmt: skip


@dataclass
class ExportReport:
    """What the verification found: problems (the export does not verify), warnings
    (it verifies, with a caveat), and how much was checked."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    #: ids of the keys that made a signature that verified, given or found in the file
    trusted_keys: set[str] = field(default_factory=set)
    file_keys: set[str] = field(default_factory=set)
    #: whether the auditor gave keys to trust (without, no signature is anchored)
    anchored: bool = False

    @property
    def intact(self) -> bool:
        return not self.problems

    def checked(self) -> dict[str, int]:
        """What was checked, the runs and events first, leaving out what there was none of."""
        first = ("runs", "events", "model_calls", "signed_approvals", "unsigned_approvals",
                 "checkpoints", "checkpointed_runs", "tombstones", "unsigned_tombstones",
                 "blobs", "keys")  # fmt: skip
        order = [*first, *sorted(set(self.counts) - set(first))]
        return {what: self.counts[what] for what in order if self.counts[what]}

    def to_data(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "problems": [problem.to_data() for problem in self.problems],
            "warnings": list(self.warnings),
            "counts": self.checked(),
            "anchored": self.anchored,
            "signed_by": {
                "trusted": sorted(self.trusted_keys),
                "from_export": sorted(self.file_keys),
            },
        }


def read_header(first: bytes) -> dict[str, Any]:
    """The header of an export, from its first line; ``ExportFormatError`` when the
    file is not an export this keel reads."""
    if first.startswith(b"run_id,"):
        raise ExportFormatError(
            "this is a CSV export, which is for spreadsheets and cannot be verified: "
            "verify the JSONL export (keel audit export --format jsonl)"
        )
    try:
        header = json.loads(first.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ExportFormatError(
            "not a keel audit export (its first line is not an export header; make one "
            "with keel audit export)"
        )
    if header.get("version") != VERSION:
        raise ExportFormatError(
            f"an audit export of format version {header.get('version')!r}, which this keel "
            f"does not read (it reads version {VERSION})"
        )
    return header
