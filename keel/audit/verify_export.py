"""Verifying an audit export offline: no database, only the file and the public keys the
auditor trusts.

What is checked, reading the file once, a run at a time (``keel.audit.export_format``):

- every line is JSON written exactly as keel writes it, in the order of the format;
- each run's chain, recomputed from the payload texts (``keel.store.chain``), ends at the
  head its ``run`` line states; each event's human fields agree with its payload;
- each checkpoint's signature, and that each exported run's chain *contains* the head a
  checkpoint signed for it (a run rewritten after the checkpoint fails, by name, even if
  its rewritten chain is consistent);
- tombstones' and signed approvals' signatures; that blobs hash to their names and every
  blob an event refers to is in the file;
- the ``end`` line's counts and digest of every byte before it (a truncated, spliced or
  otherwise edited file fails).

Signatures verify against the keys given (trusted) and the ``key`` lines of the file.
When the auditor gives keys, a signature by any other key is a problem: whoever wrote the
file could have made that key too (and signed a checkpoint of a rewritten run with it).
Given no key, such signatures are warnings and nothing is anchored to a trusted key.

A pruned run's events are gone: a checkpoint's head is compared with its tombstone's.
Pruned at the signed event, the heads must be equal; pruned before it, the history
shrank; pruned after it, what was signed cannot be compared any more (a warning).

What keel cannot prove from the file alone: that nobody rewrote a run *and* the export
consistently when no checkpoint covers the run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from keel.audit.export_format import (
    BLOB_FIELDS,
    CHECKPOINT_FIELDS,
    END_FIELDS,
    EVENT_FIELDS,
    HEADER_FIELDS,
    KEY_FIELDS,
    RUN_FIELDS,
    RUN_SECTION,
    TOMBSTONE_FIELDS,
    blob_name,
    blob_refs,
    dumps,
    event_fields,
    iso,
)
from keel.audit.export_report import (
    ExportFormatError,
    ExportReport,
    Problem,
    read_header,
)
from keel.audit.pruned import pruned_head
from keel.audit.records import Checkpoint, Tombstone, approval_signed_data
from keel.audit.signing import PublicKey, Signature, SigningError, verify_signature
from keel.store.chain import GENESIS, ChainLink, link_hash, verify_chain

__all__ = ["ExportFormatError", "ExportReport", "Problem", "verify_export"]

#: who decides an approval that keel decided itself (``on_timeout: approve``): unsigned
KEEL = "keel"


#: where each line type may come: a file's lines go up this order, never down
_RANK = {"header": 0, "key": 1, "checkpoint": 2, "run": 3, **dict.fromkeys(RUN_SECTION, 3),
         "end": 4}  # fmt: skip


@dataclass
class _Run:
    """A run's section as read so far: its ``run`` line and its chain."""

    line: int
    data: dict[str, Any]
    links: list[ChainLink] = field(default_factory=list)
    #: the file's line of each event, by sequence number
    event_lines: dict[int, int] = field(default_factory=dict)
    first_payload: dict[str, Any] | None = None
    tombstone: dict[str, Any] | None = None

    @property
    def run_id(self) -> str:
        return str(self.data["run_id"])


@dataclass(frozen=True, slots=True)
class _Signed:
    """A head a checkpoint signed for a run, and which checkpoint."""

    seq: int
    head: str
    line: int
    at: float


class _Verifier:
    def __init__(self, trusted: Sequence[PublicKey]) -> None:
        self.report = ExportReport()
        self.trusted = {key.key_id: key for key in trusted}
        self.known: dict[str, PublicKey] = dict(self.trusted)
        self.digest = hashlib.sha256()
        self.lines: Counter[str] = Counter()
        self.rank = 0
        self.run: _Run | None = None
        self.seen_runs: set[str] = set()
        self.signed: dict[str, list[_Signed]] = {}
        self.blobs: set[str] = set()
        #: blobs referred to and not seen yet: hash -> (line, run, seq) of the first
        self.wanted_blobs: dict[str, tuple[int, str, int]] = {}
        self.ended = False
        self.warned_keys: set[str] = set()

    def problem(self, text: str, line: int | None = None, run_id: str | None = None,
                seq: int | None = None) -> None:  # fmt: skip
        self.report.problems.append(Problem(text, line, run_id, seq))

    # --- lines ------------------------------------------------------------------------

    def read(self, number: int, raw: bytes) -> None:
        if self.ended:
            self.problem("a line after the end line (lines were added)", number)
            return
        if not raw.endswith(b"\n"):
            self.problem("the line does not end with a newline (the file was cut short)",
                         number)  # fmt: skip
        line = self.parse(number, raw)
        kind = None if line is None else line.get("type")
        if kind != "end":
            self.digest.update(raw)
        if line is None:
            return
        if kind not in _RANK:
            self.problem(f"unknown line type {kind!r}", number)
            return
        assert isinstance(kind, str)
        if _RANK[kind] < self.rank or (kind == "header" and number != 1):
            self.problem(f"a {kind} line out of its place in the file", number)
        self.rank = max(self.rank, _RANK[kind])
        if kind != "end":
            self.lines[kind] += 1
        getattr(self, f"on_{kind}")(number, line)

    def parse(self, number: int, raw: bytes) -> dict[str, Any] | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.problem("not UTF-8 text", number)
            return None
        try:
            line = json.loads(text)
        except ValueError as exc:
            self.problem(f"not JSON ({exc})", number)
            return None
        if not isinstance(line, dict):
            self.problem("not a JSON object", number)
            return None
        if dumps(line) != (text if text.endswith("\n") else text + "\n"):
            self.problem("not written as keel writes it (the line was edited)", number)
        return line

    def fields(self, number: int, line: dict[str, Any], names: tuple[str, ...],
               run_id: str | None = None) -> bool:  # fmt: skip
        if tuple(line) == names:
            return True
        missing = [name for name in names if name not in line]
        extra = [name for name in line if name not in names]
        said = "; ".join(part for part in (
            f"lacks {', '.join(missing)}" if missing else "",
            f"has unknown {', '.join(extra)}" if extra else "",
        ) if part) or "its fields are out of order"  # fmt: skip
        self.problem(f"a {line['type']} line that {said}", number, run_id)
        return False

    def on_header(self, number: int, line: dict[str, Any]) -> None:
        self.fields(number, line, HEADER_FIELDS)
        if line.get("exported_iso") != iso(_number(line.get("exported_at"))):
            self.problem("the header's exported_iso disagrees with exported_at", number)

    def on_key(self, number: int, line: dict[str, Any]) -> None:
        if not self.fields(number, line, KEY_FIELDS):
            return
        try:
            key = PublicKey.from_text(str(line["key"]))
        except SigningError as exc:
            self.problem(f"a key line with a bad key: {exc}", number)
            return
        if key.key_id != line["key_id"]:
            self.problem(f"the key's id is {key.key_id}, not {line['key_id']}", number)
            return
        self.known.setdefault(key.key_id, key)

    def check_signature(
        self, data: Any, signature: Any, what: str, number: int, run_id: str | None = None,
        seq: int | None = None,
    ) -> bool:  # fmt: skip
        if signature is None:
            self.problem(f"{what} is not signed", number, run_id, seq)
            return False
        try:
            parsed = Signature.from_data(signature)
        except SigningError as exc:
            self.problem(f"{what}: {exc}", number, run_id, seq)
            return False
        wrong = verify_signature(data, parsed, self.known)
        if wrong is not None:
            self.problem(f"{what}: {wrong}", number, run_id, seq)
            return False
        if parsed.key_id in self.trusted:
            self.report.trusted_keys.add(parsed.key_id)
        else:
            self.report.file_keys.add(parsed.key_id)
            if self.trusted:
                self.problem(f"{what} is signed by key {parsed.key_id}, which is not one of "
                             "the keys given with --key", number, run_id, seq)  # fmt: skip
                return False
            if parsed.key_id not in self.warned_keys:
                self.warned_keys.add(parsed.key_id)
                self.report.warnings.append(
                    f"signatures by key {parsed.key_id} verify with a key taken from the "
                    "export itself: pass --key to anchor trust in a key you hold"
                )
        return True

    def on_checkpoint(self, number: int, line: dict[str, Any]) -> None:
        if not self.fields(number, line, CHECKPOINT_FIELDS):
            return
        try:
            checkpoint = Checkpoint.from_data(line)
        except (KeyError, TypeError, ValueError, AttributeError, SigningError) as exc:
            self.problem(f"a checkpoint that does not read ({exc})", number)
            return
        if line["at_iso"] != iso(checkpoint.at):
            self.problem("the checkpoint's at_iso disagrees with its at", number)
        what = f"the checkpoint of {iso(checkpoint.at)}"
        self.check_signature(checkpoint.signed_data(), line["signature"], what, number)
        for head in checkpoint.heads:
            signed = _Signed(head.last_seq, head.head_hash, number, checkpoint.at)
            self.signed.setdefault(head.run_id, []).append(signed)

    def on_run(self, number: int, line: dict[str, Any]) -> None:
        self.close_run()
        if not self.fields(number, line, RUN_FIELDS):
            self.run = None
            return
        run = _Run(number, line)
        if run.run_id in self.seen_runs:
            self.problem("the run's section appears twice", number, run.run_id)
        self.seen_runs.add(run.run_id)
        for at, said in (("created_at", "created_iso"), ("ended_at", "ended_iso")):
            if line[said] != iso(_number(line[at])):
                self.problem(f"the run line's {said} disagrees with its {at}", number,
                             run.run_id)  # fmt: skip
        self.run = run

    def section(self, number: int, line: dict[str, Any]) -> _Run | None:
        """The run a line of a run's section belongs to (a problem if it is not the run
        whose section it is in)."""
        run = self.run
        if run is None or line.get("run_id") != run.run_id:
            self.problem(f"a {line['type']} line outside its run's section", number,
                         _text(line.get("run_id")))  # fmt: skip
            return None
        return run

    def on_event(self, number: int, line: dict[str, Any]) -> None:
        run = self.section(number, line)
        if run is None or not self.fields(number, line, EVENT_FIELDS, run.run_id):
            return
        seq, at, prev, payload = line["seq"], line["at"], line["prev_hash"], line["payload"]
        if not (isinstance(seq, int) and isinstance(at, int | float)
                and isinstance(prev, str) and isinstance(payload, str)):  # fmt: skip
            self.problem("an event line whose seq, at, prev_hash or payload has the wrong "
                         "type", number, run.run_id)  # fmt: skip
            return
        try:
            data = json.loads(payload)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self.problem("the payload is not a JSON object", number, run.run_id, seq)
            data = {}
        derived = {"at_iso": iso(float(at)), **event_fields(data)}
        for name, value in derived.items():
            if line[name] != value:
                verb = "disagree" if name in _PLURAL_FIELDS else "disagrees"
                self.problem(f"its {name} {verb} with its payload", number, run.run_id, seq)
        run.links.append(ChainLink(seq, float(at), payload, prev))
        run.event_lines.setdefault(seq, number)
        if run.first_payload is None:
            run.first_payload = data
        if data.get("kind") == "approval_decided":
            self.check_approval(number, run.run_id, seq, data)
        for ref in blob_refs(data):
            if ref not in self.blobs:
                self.wanted_blobs.setdefault(ref, (number, run.run_id, seq))

    def check_approval(self, number: int, run_id: str, seq: int, data: dict[str, Any]) -> None:
        """A decision signed where it was made: its ``signature`` holds the time signed
        (``at``) beside the signature. keel's own decisions are never signed; a person's
        decision made where no key was configured is counted as unsigned."""
        signature = data.get("signature")
        if signature is None:
            if data.get("by") != KEEL:
                self.report.counts["unsigned_approvals"] += 1
            return
        self.report.counts["signed_approvals"] += 1
        try:
            signed = approval_signed_data(
                run_id, str(data["node"]), bool(data["approved"]), str(data["by"]),
                data.get("data"), str(data.get("comment", "")), float(signature["at"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            self.problem(f"a signed approval that does not read ({exc!r} is wrong or missing)",
                         number, run_id, seq)  # fmt: skip
            return
        self.check_signature(signed, signature, "the approval's signature", number, run_id, seq)

    def on_tombstone(self, number: int, line: dict[str, Any]) -> None:
        run = self.section(number, line)
        if run is None or not self.fields(number, line, TOMBSTONE_FIELDS, run.run_id):
            return
        try:
            tombstone = Tombstone(
                run_id=str(line["run_id"]), workflow=str(line["workflow"]),
                status=str(line["status"]), created_at=float(line["created_at"]),
                ended_at=_number(line["ended_at"]), last_seq=int(line["last_seq"]),
                head_hash=str(line["head_hash"]), pruned_at=float(line["pruned_at"]),
                by=_text(line["by"]), counts=dict(line["counts"]),
            )  # fmt: skip
        except (TypeError, ValueError) as exc:
            self.problem(f"a tombstone that does not read ({exc})", number, run.run_id)
            return
        if line["signature"] is None:  # keel prune --unsigned
            self.report.counts["unsigned_tombstones"] += 1
        else:
            self.check_signature(tombstone.signed_data(), line["signature"], "the tombstone",
                                 number, run.run_id)  # fmt: skip
        head = (run.data["last_seq"], run.data["head_hash"])
        if (tombstone.last_seq, tombstone.head_hash) != head:
            self.problem("the tombstone's head is not the run's head", number, run.run_id)
        run.tombstone = line

    def on_blob(self, number: int, line: dict[str, Any]) -> None:
        if not self.fields(number, line, BLOB_FIELDS):
            return
        name, text = line["name"], line["text"]
        if not isinstance(text, str) or blob_name(text) != name:
            self.problem(f"the blob named {name} does not hash to its name", number)
            return
        if line["size"] != len(text.encode("utf-8")):
            self.problem(f"the blob {name} says it has {line['size']} bytes, not "
                         f"{len(text.encode('utf-8'))}", number)  # fmt: skip
        self.blobs.add(name)
        self.wanted_blobs.pop(name, None)

    def on_model_call(self, number: int, line: dict[str, Any]) -> None:
        self.section(number, line)

    def on_end(self, number: int, line: dict[str, Any]) -> None:
        self.close_run()
        self.ended = True
        if not self.fields(number, line, END_FIELDS):
            return
        counted = dict(sorted(self.lines.items()))
        if line["lines"] != counted:
            self.problem(f"the end line counts {_counts(line['lines'])} but the file has "
                         f"{_counts(counted)} (lines were removed or added)", number)  # fmt: skip
        if line["digest"] != self.digest.hexdigest():
            self.problem("the file's digest does not match its end line (the file was "
                         "changed after it was exported)", number)  # fmt: skip

    # --- a run's section, once read ---------------------------------------------------

    def close_run(self) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        self.report.counts["runs"] += 1
        self.report.counts["events"] += len(run.links)
        run_id, last_seq, head = run.run_id, run.data["last_seq"], run.data["head_hash"]
        if not (isinstance(last_seq, int) and isinstance(head, str)):
            self.problem("the run line's last_seq or head_hash has the wrong type", run.line,
                         run_id)  # fmt: skip
            return
        if run.links or run.tombstone is None:
            report = verify_chain(run_id, run.links, last_seq, head)
            for said in report.problems:
                found = _EVENT_PROBLEM.match(said)
                if found is None:
                    self.problem(said, run.line, run_id)
                    continue
                seq = int(found.group(1))
                self.problem(found.group(2), run.event_lines.get(seq, run.line), run_id, seq)
        first = run.first_payload
        if first is not None and first.get("kind") == "run_started":
            for name in ("workflow", "spec_version"):
                if first.get(name) != run.data[name]:
                    self.problem(f"the run line's {name} is not the one its first event "
                                 "records", run.line, run_id)  # fmt: skip
        self.check_signed_heads(run)

    def check_signed_heads(self, run: _Run) -> None:
        """Each head a checkpoint signed for this run must be in its chain: the link
        hash after event ``seq`` is the signed head."""
        wanted = self.signed.pop(run.run_id, [])
        if not wanted:
            return
        self.report.counts["checkpointed_runs"] += 1
        hashes = dict(_link_hashes(run.run_id, run.links))
        for signed in wanted:
            at = hashes.get(signed.seq)
            when = f"the checkpoint of {iso(signed.at)} (line {signed.line})"
            if at == signed.head:
                continue
            if at is None and run.tombstone is not None and not run.links:
                self.check_pruned_head(run, signed, when)
                continue
            if at is None:
                self.problem(f"{when} signed its history up to event {signed.seq}, but the "
                             f"export has {len(run.links)} events (events were removed)",
                             run.line, run.run_id)  # fmt: skip
            else:
                self.problem(f"the history up to event {signed.seq} is not what {when} "
                             "signed: the run was rewritten after the checkpoint",
                             run.event_lines.get(signed.seq, run.line), run.run_id,
                             signed.seq)  # fmt: skip

    def check_pruned_head(self, run: _Run, signed: _Signed, when: str) -> None:
        """A checkpoint's head against a pruned run's tombstone (see the module)."""
        assert run.tombstone is not None
        pruned_seq, pruned_hash = run.tombstone["last_seq"], run.tombstone["head_hash"]
        verdict = pruned_head(pruned_seq, pruned_hash, signed.seq, signed.head)
        if verdict == "rewritten":
            self.problem(f"pruned with a head other than the one signed: its tombstone "
                         f"keeps {str(pruned_hash)[:16]}..., {when} signed "
                         f"{signed.head[:16]}... (the history was rewritten, then "
                         "pruned)", run.line, run.run_id)  # fmt: skip
        elif verdict == "shrank":
            self.problem(f"pruned at event {pruned_seq}, but {when} signed its history up "
                         f"to event {signed.seq}: the history shrank before it was pruned",
                         run.line, run.run_id)  # fmt: skip
        elif verdict == "later":
            self.report.warnings.append(
                f"run {run.run_id}: pruned at event {pruned_seq}: events up to {pruned_seq} "
                f"were removed; what {when} signed (up to event {signed.seq}) can no longer "
                "be compared"
            )

    def finish(self) -> ExportReport:
        self.close_run()
        if not self.ended:
            self.problem("the file ends without its end line (it was cut short)")
        for name, (number, run_id, seq) in sorted(self.wanted_blobs.items()):
            self.problem(f"refers to blob {name}, which is not in the export", number,
                         run_id, seq)  # fmt: skip
        for what, noun, said in (
            ("unsigned_approvals", "approval", "decided by a person where no signing key "
             "was configured: only the chain shows who decided"),
            ("unsigned_tombstones", "run", "pruned without a signing key (keel prune "
             "--unsigned): only the chain shows what was removed"),
        ):  # fmt: skip
            count = self.report.counts[what]
            if count:
                self.report.warnings.append(f"{count} {noun}{'' if count == 1 else 's'} {said}")
        unexported = sorted(self.signed)
        if unexported:
            self.report.counts["checkpointed_runs_not_exported"] = len(unexported)
        for kind in ("checkpoint", "tombstone", "blob", "model_call", "key"):
            if self.lines[kind]:
                self.report.counts[f"{kind}s"] = self.lines[kind]
        return self.report


#: the event fields named in the plural ("its inputs disagree")
_PLURAL_FIELDS = frozenset({"inputs", "outputs"})

#: a problem ``verify_chain`` found at one event
_EVENT_PROBLEM = re.compile(r"^event (\d+): (.*)$")


def _link_hashes(run_id: str, links: Iterable[ChainLink]) -> Iterator[tuple[int, str]]:
    """Each event's sequence number and the hash of the chain up to it, as the export's
    payloads give it (a chain broken earlier gives other hashes: it fails anyway)."""
    previous = GENESIS
    for link in links:
        previous = link_hash(previous, run_id, link.seq, link.at, link.payload)
        yield link.seq, previous


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _counts(lines: Any) -> str:
    if not isinstance(lines, Mapping):
        return repr(lines)
    return ", ".join(f"{count} {kind}" for kind, count in sorted(lines.items())) or "nothing"


def verify_export(lines: Iterable[bytes], trusted: Sequence[PublicKey] = ()) -> ExportReport:
    """Verify an export read as lines of bytes (each with its newline, as a binary file
    yields them), trusting ``trusted`` keys. ``ExportFormatError`` when it is not an
    export at all; otherwise every problem is in the report."""
    verifier = _Verifier(trusted)
    verifier.report.anchored = bool(trusted)
    number = 0
    for number, raw in enumerate(lines, start=1):
        if number == 1:
            read_header(raw)
        verifier.read(number, raw)
    if number == 0:
        raise ExportFormatError("the file is empty, not a keel audit export")
    return verifier.finish()
