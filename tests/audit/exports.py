"""Helpers of the audit export tests: exports as bytes (from a store, with the lines
other parts of keel add: checkpoints, tombstones, blobs), runs made of payloads by hand
(for events keel does not record yet, such as signed approvals), verifying bytes, and
rewriting a run's whole chain in an SQLite file the way an intruder with database access
would: consistently, so ``keel verify`` still passes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from keel.audit.export import ExportWriter, Selection, resolved, run_lines, selected_runs
from keel.audit.records import Checkpoint, RunHead
from keel.audit.signing import PublicKey
from keel.audit.verify_export import ExportFormatError, ExportReport, verify_export
from keel.store import Store
from keel.store.chain import GENESIS, ChainLink, canonical_json, link_hash
from keel.store.records import RunRecord

EXPORTED_AT = 1_800_000_000.0


def lines_of(data: bytes) -> list[bytes]:
    """The lines of a file as a binary file gives them: split at newlines only."""
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    return lines + ([parts[-1]] if parts[-1] else [])


def verified(data: bytes, keys: Sequence[PublicKey] = ()) -> ExportReport | None:
    """The report on ``data``; None when it is not an export at all (a failure too)."""
    try:
        return verify_export(lines_of(data), keys)
    except ExportFormatError:
        return None


def fails(data: bytes, keys: Sequence[PublicKey] = ()) -> bool:
    report = verified(data, keys)
    return report is None or not report.intact


def problems(data: bytes, keys: Sequence[PublicKey] = ()) -> list[str]:
    report = verified(data, keys)
    assert report is not None
    return [str(problem) for problem in report.problems]


def export_of(
    store: Store,
    selection: Selection | None = None,
    *,
    keys: Sequence[PublicKey] = (),
    checkpoints: Sequence[Checkpoint] = (),
    extra: Iterable[str] = (),
) -> bytes:
    """An export of ``store`` as the writer makes it, with ``checkpoints`` after the
    keys and the ``extra`` lines (made with the same writer: see ``writer_lines``) after
    the runs."""
    writer = ExportWriter()
    return b"".join(line.encode() for line in _lines(writer, store, selection or Selection(),
                                                     keys, checkpoints, extra))  # fmt: skip


def _lines(writer: ExportWriter, store: Store, selection: Selection, keys: Sequence[PublicKey],
           checkpoints: Sequence[Checkpoint], extra: Iterable[str]) -> Iterator[str]:  # fmt: skip
    selection = resolved(store, selection)
    yield writer.header(selection, EXPORTED_AT, "test")
    for key in keys:
        yield writer.key(key)
    for checkpoint in checkpoints:
        yield writer.checkpoint(checkpoint)
    for record in selected_runs(store, selection):
        yield from run_lines(writer, store, record)
    yield from extra
    yield writer.end()


def with_checkpoint(data: bytes, checkpoint: Checkpoint) -> bytes:
    """An export with ``checkpoint`` in it, after its header and keys, and its end line
    made again to count it: what an export of a store that keeps checkpoints holds."""
    import hashlib

    lines = lines_of(data)
    before = (b'{"type":"header"', b'{"type":"key"')
    at = next(i for i, line in enumerate(lines) if not line.startswith(before))
    lines.insert(at, ExportWriter().checkpoint(checkpoint).encode())
    end = json.loads(lines.pop())
    end["lines"] = dict(sorted({**end["lines"], "checkpoint": end["lines"].get("checkpoint", 0)
                                + 1}.items()))  # fmt: skip
    end["digest"] = hashlib.sha256(b"".join(lines)).hexdigest()
    return b"".join(lines) + (json.dumps(end, separators=(",", ":")) + "\n").encode()


def heads(store: Store, run_ids: Iterable[str]) -> tuple[RunHead, ...]:
    return tuple(RunHead(r.id, r.last_seq, r.head_hash) for r in map(store.get_run, run_ids))


# --- runs made by hand --------------------------------------------------------------------


def chain(run_id: str, payloads: Sequence[dict[str, Any]], at: float) -> list[ChainLink]:
    """Links of a run whose events are ``payloads``, one a second from ``at``."""
    links, previous = [], GENESIS
    for seq, payload in enumerate(payloads, start=1):
        text = canonical_json(payload)
        links.append(ChainLink(seq, at + seq, text, previous))
        previous = link_hash(previous, run_id, seq, at + seq, text)
    return links


def head_of(run_id: str, links: Sequence[ChainLink]) -> str:
    last = links[-1]
    return link_hash(last.prev_hash, run_id, last.seq, last.at, last.payload)


def record_of(run_id: str, links: Sequence[ChainLink], *, workflow: str = "hand",
              status: str = "running") -> RunRecord:  # fmt: skip
    created = links[0].at if links else 0.0
    head = head_of(run_id, links) if links else GENESIS
    return RunRecord(id=run_id, workflow=workflow, spec_version="v1", status=status,
                     input={}, output=None, reason=None, created_at=created, updated_at=0.0,
                     last_seq=len(links), head_hash=head, origin=None)  # fmt: skip


def started(workflow: str = "hand") -> dict[str, Any]:
    return {"kind": "run_started", "workflow": workflow, "spec_version": "v1", "input": {},
            "parent": None}  # fmt: skip


def written(sections: Iterable[Iterable[Any]], *, keys: Sequence[PublicKey] = (),
            checkpoints: Sequence[Checkpoint] = ()) -> bytes:  # fmt: skip
    """An export written line by line: ``sections`` are callables of the writer giving
    a line each (``lambda w: w.run(record)``...), after the keys and checkpoints."""
    writer = ExportWriter()
    out = [writer.header(Selection(), EXPORTED_AT, "test")]
    out += [writer.key(key) for key in keys]
    out += [writer.checkpoint(checkpoint) for checkpoint in checkpoints]
    for section in sections:
        out += [make(writer) for make in section]
    out.append(writer.end())
    return "".join(out).encode()


def run_section(record: RunRecord, links: Sequence[ChainLink]) -> list[Any]:
    return [lambda w: w.run(record), *(lambda w, link=link: w.event(record.id, link)
                                        for link in links)]  # fmt: skip


# --- an intruder with database access -----------------------------------------------------


def rewrite_output(path: Path, run_id: str, node: str, output: Any) -> None:
    """Set ``node``'s output in the SQLite file, where it was recorded and in the run's
    output, and recompute the run's whole chain and head consistently: the history
    verifies and agrees with the runs table, as it would after a careful forgery."""
    with closing(sqlite3.connect(path)) as conn, conn:
        rows = conn.execute("SELECT seq, at, data FROM events WHERE run_id = ? ORDER BY seq",
                            (run_id,)).fetchall()  # fmt: skip
        previous, edited = GENESIS, False
        for number, at, data in rows:
            payload = json.loads(data)
            if payload["kind"] == "node_succeeded" and payload["node"] == node:
                payload["output"], edited = output, True
            elif payload["kind"] == "run_completed" and isinstance(payload["output"], dict) \
                    and node in payload["output"]:  # fmt: skip
                payload["output"][node] = output
                conn.execute("UPDATE runs SET output = ? WHERE id = ?",
                             (canonical_json(payload["output"]), run_id))  # fmt: skip
            data = canonical_json(payload)
            conn.execute("UPDATE events SET data = ?, prev_hash = ? WHERE run_id = ? AND seq = ?",
                         (data, previous, run_id, number))  # fmt: skip
            previous = link_hash(previous, run_id, number, at, data)
        assert edited, f"run {run_id} recorded no output of {node}"
        conn.execute("UPDATE runs SET head_hash = ? WHERE id = ?", (previous, run_id))
