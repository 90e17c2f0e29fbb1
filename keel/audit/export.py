"""Writing an audit export: every event of the selected runs with who, what, when, inputs
and outputs, each run's chain (the payload texts exactly as hashed) and head, and the
LLM ledger of those runs, as JSON Lines an auditor verifies offline
(``keel.audit.verify_export``), or as CSV for spreadsheets.

Streamed: runs are read a page at a time and each run's events when its turn comes, so
an export of any number of runs holds one run in memory. ``ExportWriter`` turns records
into lines (and counts and hashes them for the ``end`` line); ``export_jsonl`` says
which records of a store go in, in which order (the format: ``keel.audit.export_format``).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from keel.audit.checkpoints import checkpoint_of
from keel.audit.export_format import (
    FORMAT,
    VERSION,
    dumps,
    event_fields,
    iso,
)
from keel.audit.records import Checkpoint, Tombstone
from keel.audit.signing import PublicKey, SigningError
from keel.store.blobs import names_in
from keel.store.chain import ChainLink
from keel.store.model_calls import ModelCall
from keel.store.protocol import Store
from keel.store.records import RunRecord

#: runs read from the store at a time
PAGE = 200


@dataclass(frozen=True, slots=True)
class Selection:
    """Which runs an export holds: these runs (ids or unique prefixes), or every run;
    either way only those of ``workflow`` created at ``since`` or later and before
    ``until`` (seconds since the epoch), when given."""

    runs: tuple[str, ...] = ()
    workflow: str | None = None
    since: float | None = None
    until: float | None = None

    def to_data(self) -> dict[str, Any]:
        return {"runs": list(self.runs), "workflow": self.workflow,
                "since": self.since, "since_iso": iso(self.since),
                "until": self.until, "until_iso": iso(self.until)}  # fmt: skip

    def admits(self, record: RunRecord) -> bool:
        return (
            (self.workflow is None or record.workflow == self.workflow)
            and (self.since is None or record.created_at >= self.since)
            and (self.until is None or record.created_at < self.until)
        )


def resolved(store: Store, selection: Selection) -> Selection:
    """The selection with each named run's whole id: a run that is not there fails here
    (``RunNotFoundError``), before the first line is written."""
    ids = tuple(dict.fromkeys(store.get_run(run_id).id for run_id in selection.runs))
    return dataclasses.replace(selection, runs=ids)


def selected_runs(store: Store, selection: Selection) -> Iterator[RunRecord]:
    """The runs of a (resolved) selection: named runs in the order named, else newest
    first, a page at a time."""
    if selection.runs:
        for run_id in selection.runs:
            record = store.get_run(run_id)
            if selection.admits(record):
                yield record
        return
    cursor: tuple[float, str] | None = None
    while True:
        page = store.list_runs(workflow=selection.workflow, created_after=selection.since,
                               created_before=selection.until, cursor=cursor,
                               limit=PAGE)  # fmt: skip
        yield from page
        if len(page) < PAGE:
            return
        cursor = (page[-1].created_at, page[-1].id)


class ExportWriter:
    """Lines of an export, one record at a time; counts each line's type and hashes
    every byte it writes, for the ``end`` line that closes the file."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._counts: Counter[str] = Counter()

    def _line(self, line: dict[str, Any]) -> str:
        text = dumps(line)
        self._digest.update(text.encode("utf-8"))
        self._counts[line["type"]] += 1
        return text

    def header(self, selection: Selection, exported_at: float, keel_version: str) -> str:
        return self._line({"type": "header", "format": FORMAT, "version": VERSION,
                           "exported_at": exported_at, "exported_iso": iso(exported_at),
                           "keel_version": keel_version,
                           "selection": selection.to_data()})  # fmt: skip

    def key(self, key: PublicKey) -> str:
        return self._line({"type": "key", "key_id": key.key_id, "key": key.to_text()})

    def checkpoint(self, checkpoint: Checkpoint) -> str:
        data = checkpoint.to_data()
        return self._line({"type": "checkpoint", "id": data["id"], "at": data["at"],
                           "at_iso": iso(checkpoint.at), "by": data["by"],
                           "heads": data["heads"], "signature": data["signature"]})  # fmt: skip

    def run(self, record: RunRecord) -> str:
        return self._line({
            "type": "run", "run_id": record.id, "workflow": record.workflow,
            "spec_version": record.spec_version, "status": record.status,
            "created_at": record.created_at, "created_iso": iso(record.created_at),
            "ended_at": record.ended_at, "ended_iso": iso(record.ended_at),
            "started_by": record.started_by, "parent_run": record.parent_run,
            "last_seq": record.last_seq, "head_hash": record.head_hash,
        })  # fmt: skip

    def event(self, run_id: str, link: ChainLink) -> str:
        return self._line({"type": "event", "run_id": run_id, "seq": link.seq, "at": link.at,
                           "at_iso": iso(link.at), "prev_hash": link.prev_hash,
                           "payload": link.payload,
                           **event_fields(_payload_data(link.payload))})  # fmt: skip

    def tombstone(self, tombstone: Tombstone) -> str:
        data = tombstone.signed_data()
        del data["kind"]
        signature = None if tombstone.signature is None else tombstone.signature.to_data()
        return self._line({"type": "tombstone", **data, "signature": signature})

    def blob(self, name: str, text: str) -> str:
        """A blob (``Store.blobs``: its name and stored text)."""
        return self._line({"type": "blob", "name": name, "size": len(text.encode("utf-8")),
                           "text": text})  # fmt: skip

    def model_call(self, call: ModelCall) -> str:
        data = dataclasses.asdict(call)
        data.pop("run_id")
        return self._line({"type": "model_call", "run_id": call.run_id, **data})

    @property
    def counts(self) -> dict[str, int]:
        """How many lines of each type were written so far."""
        return dict(self._counts)

    def end(self) -> str:
        """The last line: how many lines of each type came before it and the SHA-256 of
        their bytes (a truncated or spliced file fails on it)."""
        line = {"type": "end", "lines": dict(sorted(self._counts.items())),
                "digest": self._digest.hexdigest()}  # fmt: skip
        return dumps(line)


def _payload_data(payload: str) -> dict[str, Any]:
    """A stored payload read for its human fields (an unreadable one has none: the
    verifier reports it)."""
    try:
        data = json.loads(payload)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def run_lines(writer: ExportWriter, store: Store, record: RunRecord) -> Iterator[str]:
    """A run's section: its row, its events as stored, its tombstone when it was
    pruned, the blobs its events name (large values, ``keel.store.blobs``), its LLM
    ledger."""
    yield writer.run(record)
    links = store.chain_links(record.id)
    for link in links:
        yield writer.event(record.id, link)
    if record.pruned_at is not None:
        stored = store.tombstone(record.id)
        if stored is not None:
            yield writer.tombstone(Tombstone.from_data(stored.data))
    names = names_in(link.payload for link in links)
    if names:
        for name, text in sorted(store.blobs(names).items()):
            yield writer.blob(name, text)
    for call in store.model_calls(record.id):
        yield writer.model_call(call)


#: which signed checkpoints an export carries: the newest of each signing key (of every
#: run, and of the selection's workflow), every one, or none
CheckpointChoice = Literal["newest", "all", "none"]
CHECKPOINT_CHOICES: tuple[str, ...] = get_args(CheckpointChoice)


def chosen_checkpoints(
    store: Store, selection: Selection, choice: CheckpointChoice = "newest"
) -> list[Checkpoint]:
    """The checkpoints an export carries, oldest first. ``newest``: the newest one of
    every run (it proves everything recorded up to it) and, for an export of one
    workflow, that workflow's newest too -- of *each signing key*, so that a newer
    checkpoint signed by a key the auditor does not trust cannot push the trusted one
    out of the file; a checkpoint is carried whole (its signature covers every head in
    it), so ``all`` can be large."""
    if choice == "none":
        return []
    summaries = store.checkpoints(limit=None)  # newest first
    if choice == "newest":
        wanted = {None, selection.workflow}
        newest: dict[tuple[str | None, str], int] = {}
        for summary in summaries:
            scope = (summary.workflow, summary.key_id)
            if summary.workflow in wanted and scope not in newest:
                newest[scope] = summary.id
        ids = sorted(newest.values())
    else:
        ids = sorted(summary.id for summary in summaries)
    chosen = []
    for checkpoint_id in ids:
        stored = store.checkpoint(checkpoint_id)
        if stored is not None:
            chosen.append(checkpoint_of(stored))
    return chosen


def published_keys(store: Store, given: Sequence[PublicKey] = ()) -> list[PublicKey]:
    """The public keys an export publishes: those given, then every key that signed
    something in the store (a verifier trusts neither for being in the file: they let
    it say which key signed, and the auditor anchors trust with ``--key``)."""
    keys = {key.key_id: key for key in given}
    for stored in store.audit_keys():
        with contextlib.suppress(SigningError):  # a malformed row: its signatures fail
            key = PublicKey.from_text(stored.public_key)
            keys.setdefault(key.key_id, key)
    return list(keys.values())


def export_jsonl(
    store: Store,
    selection: Selection,
    *,
    exported_at: float,
    keel_version: str,
    keys: Sequence[PublicKey] = (),
    checkpoints: CheckpointChoice = "newest",
    writer: ExportWriter | None = None,
) -> Iterator[str]:
    """The lines of a JSONL export of ``selection`` (resolve it first: ``resolved``),
    with ``keys`` and the store's signing keys published in it, and the signed
    ``checkpoints`` chosen (``chosen_checkpoints``). ``writer``: one to read the counts
    from afterwards."""
    writer = ExportWriter() if writer is None else writer
    yield writer.header(selection, exported_at, keel_version)
    for key in published_keys(store, keys):
        yield writer.key(key)
    for checkpoint in chosen_checkpoints(store, selection, checkpoints):
        yield writer.checkpoint(checkpoint)
    for record in selected_runs(store, selection):
        yield from run_lines(writer, store, record)
    yield writer.end()


CSV_COLUMNS = ("run_id", "workflow", "seq", "at", "at_epoch", "kind", "node", "attempt",
               "item", "who", "inputs", "outputs", "prev_hash", "payload")  # fmt: skip


def export_csv(store: Store, selection: Selection) -> Iterator[str]:
    """One row per event, for spreadsheets: who, what, when, inputs and outputs, with
    the stored payload and previous hash. Not verifiable offline (``keel audit verify``
    reads JSONL): a spreadsheet rewrites what it opens."""
    yield _csv_row(CSV_COLUMNS)
    for record in selected_runs(store, selection):
        for link in store.chain_links(record.id):
            fields = event_fields(_payload_data(link.payload))
            yield _csv_row((
                record.id, record.workflow, link.seq, iso(link.at), repr(float(link.at)),
                fields["kind"], fields["node"], fields["attempt"], fields["item"],
                fields["who"], _cell_json(fields["inputs"]), _cell_json(fields["outputs"]),
                link.prev_hash, link.payload,
            ))  # fmt: skip


def _cell_json(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


#: a spreadsheet reads a cell starting with one of these as a formula
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _csv_row(values: Iterable[Any]) -> str:
    """One CSV row; a text cell a spreadsheet would run as a formula is quoted with a
    leading apostrophe (what spreadsheets show as text)."""
    cells = []
    for value in values:
        text = "" if value is None else str(value)
        if isinstance(value, str) and text.startswith(_FORMULA):
            text = "'" + text
        cells.append(text)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue()
