"""An audit export verifies offline, and any change to it fails: a flipped byte anywhere,
a line removed, added or moved, a file cut short, a human-readable field that no longer
says what its payload says. A run rewritten consistently in the database verifies as an
export alone, and fails against a checkpoint signed before the rewrite, by name.

The runs are real: recorded through the store as the runtime records them (claims,
outcomes, the whole chain), in an SQLite file."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.audit.export import Selection, export_csv, export_jsonl, resolved
from keel.audit.records import sign_checkpoint
from keel.audit.signing import SigningKey
from keel.audit.verify_export import ExportFormatError, verify_export
from keel.store.chain import verify_chain
from keel.store.sqlite import SQLiteStore
from tests.audit.exports import (
    EXPORTED_AT,
    export_of,
    fails,
    heads,
    lines_of,
    problems,
    rewrite_output,
    verified,
)
from tests.contract.conftest import Driver, finished_three_node_run, roots_spec


def resealed(data: bytes) -> bytes:
    """``data`` with its end line made anew for what precedes it: what someone who
    edits an export and knows the format does to hide the edit from the digest."""
    import hashlib

    lines = lines_of(data)
    end = json.loads(lines[-1])
    body = b"".join(lines[:-1])
    end["digest"] = hashlib.sha256(body).hexdigest()
    text = json.dumps(end, ensure_ascii=False, separators=(",", ":")) + "\n"
    return body + text.encode()


def edited(data: bytes, number: int, change: dict[str, object]) -> bytes:
    """``data`` with fields of line ``number`` (from 1) changed, then resealed."""
    lines = lines_of(data)
    line = json.loads(lines[number - 1])
    line.update(change)
    lines[number - 1] = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"
                         ).encode()  # fmt: skip
    return resealed(b"".join(lines))


@pytest.fixture(scope="module")
def thousand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SQLiteStore, bytes]]:
    """1,000 finished runs of 11 events each, and their export as the CLI writes it."""
    store = SQLiteStore(tmp_path_factory.mktemp("thousand") / "keel.db")
    for number in range(1000):
        finished_three_node_run(store, f"run-{number:04d}")
    lines = export_jsonl(store, resolved(store, Selection()), exported_at=EXPORTED_AT,
                         keel_version="test")  # fmt: skip
    yield store, "".join(lines).encode()
    store.close()


def test_an_export_of_1000_runs_verifies_offline(thousand: tuple[SQLiteStore, bytes]) -> None:
    store, data = thousand
    report = verified(data)
    assert report is not None
    assert report.intact, report.problems[:5]
    assert (report.counts["runs"], report.counts["events"]) == (1000, 11_000)
    runs = [json.loads(line) for line in lines_of(data) if line.startswith(b'{"type":"run"')]
    assert sorted(run["run_id"] for run in runs) == [f"run-{n:04d}" for n in range(1000)]
    assert all(run["head_hash"] == store.get_run(run["run_id"]).head_hash for run in runs)


def test_one_flipped_byte_in_the_1000_run_export_fails(
    thousand: tuple[SQLiteStore, bytes],
) -> None:
    _, data = thousand
    rng = random.Random(1000)
    for _ in range(5):
        position = rng.randrange(len(data))
        flipped = bytearray(data)
        flipped[position] ^= rng.randrange(1, 256)
        assert fails(bytes(flipped)), position


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "keel.db")
    for number in range(3):
        finished_three_node_run(opened, f"run-{number}")
    yield opened
    opened.close()


def test_every_event_is_exported_with_its_payload_as_stored(store: SQLiteStore) -> None:
    lines = [json.loads(line) for line in lines_of(export_of(store))]
    assert [line["type"] for line in lines[:3]] == ["header", "run", "event"]
    assert lines[0]["format"] == "keel-audit-export"
    events = [line for line in lines if line["type"] == "event" and line["run_id"] == "run-1"]
    stored = store.chain_links("run-1")
    assert [(e["seq"], e["at"], e["prev_hash"], e["payload"]) for e in events] == [
        (link.seq, link.at, link.prev_hash, link.payload) for link in stored
    ]
    scheduled = next(e for e in events if e["kind"] == "node_scheduled" and e["node"] == "a")
    assert (scheduled["attempt"], scheduled["inputs"]) == (1, {"n": 2})
    began = next(e for e in events if e["kind"] == "node_started" and e["node"] == "b")
    assert began["who"] == "w2"  # the worker that ran it
    done = next(e for e in events if e["kind"] == "node_succeeded" and e["node"] == "b")
    assert done["outputs"] == {"text": "B", "n": 1.5}
    assert done["at_iso"].endswith("Z")
    assert lines[-1]["lines"] == {"event": 33, "header": 1, "run": 3}


def test_every_flipped_byte_fails(store: SQLiteStore) -> None:
    key = SigningKey.generate()
    checkpoint = sign_checkpoint(key, EXPORTED_AT, "auditor", heads(store, ["run-0", "run-2"]))
    data = export_of(store, keys=[key.public_key], checkpoints=[checkpoint])
    assert not problems(data, [key.public_key])
    rng = random.Random(23)
    positions = {rng.randrange(len(data)) for _ in range(1500)}
    positions |= {0, len(data) - 1, *(i for i, byte in enumerate(data) if byte == ord("\n"))}
    for position in sorted(positions):
        flipped = bytearray(data)
        flipped[position] ^= rng.randrange(1, 256)
        around = data[position - 20 : position + 20]
        assert fails(bytes(flipped), [key.public_key]), (position, around)


def test_a_line_that_no_longer_parses_is_named(store: SQLiteStore) -> None:
    lines = lines_of(export_of(store))
    lines[4] = lines[4].replace(b'"seq":', b'"seq"', 1)
    assert any(p.startswith("line 5: not JSON") for p in problems(b"".join(lines)))


def test_removing_adding_or_moving_any_line_fails(store: SQLiteStore) -> None:
    lines = lines_of(export_of(store))
    for number in range(len(lines)):
        assert fails(b"".join(lines[:number] + lines[number + 1 :])), f"line {number + 1} removed"
        assert fails(b"".join(lines[: number + 1] + lines[number:])), f"line {number + 1} twice"
    for number in range(len(lines) - 1):
        swapped = [*lines[:number], lines[number + 1], lines[number], *lines[number + 2 :]]
        assert fails(b"".join(swapped)), f"lines {number + 1} and {number + 2} swapped"


def test_a_file_cut_short_anywhere_fails(store: SQLiteStore) -> None:
    data = export_of(store)
    for size in range(0, len(data), 97):
        assert fails(data[:size]), size
    said = problems(b"".join(lines_of(data)[:-1]))
    assert said == ["the file ends without its end line (it was cut short)"]


def test_an_event_removed_and_the_file_resealed_is_named(store: SQLiteStore) -> None:
    lines = lines_of(export_of(store))
    number = next(i for i, line in enumerate(lines) if b'"run_id":"run-1","seq":4,' in line)
    cut = resealed(b"".join(lines[:number] + lines[number + 1 :]))
    said = problems(cut)
    assert any("run run-1, event 5: " in p and "previous-hash" in p for p in said), said
    assert any("lines were removed" in p for p in said), said


def test_human_fields_that_disagree_with_the_payload_are_named(store: SQLiteStore) -> None:
    data = export_of(store)
    lines = lines_of(data)
    number = next(i for i, line in enumerate(lines, start=1)
                  if b'"run_id":"run-2","seq":9,' in line)  # fmt: skip
    assert json.loads(lines[number - 1])["kind"] == "node_succeeded"
    said = problems(edited(data, number, {"outputs": "approved", "who": "someone"}))
    assert said == [
        f"line {number}, run run-2, event 9: its who disagrees with its payload",
        f"line {number}, run run-2, event 9: its outputs disagree with its payload",
    ]


def test_a_run_line_that_disagrees_with_its_history_is_named(store: SQLiteStore) -> None:
    data = export_of(store)
    number = next(i for i, line in enumerate(lines_of(data), start=1)
                  if line.startswith(b'{"type":"run","run_id":"run-1"'))  # fmt: skip
    said = problems(edited(data, number, {"head_hash": "0" * 64}))
    assert said == [f"line {number + 11}, run run-1, event 11: does not match the run's "
                    "recorded head hash"]  # fmt: skip
    said = problems(edited(data, number, {"workflow": "other"}))
    assert said == [f"line {number}, run run-1: the run line's workflow is not the one its "
                    "first event records"]  # fmt: skip


def test_a_payload_edited_in_the_file_breaks_the_chain_at_the_next_event(
    store: SQLiteStore,
) -> None:
    data = export_of(store)
    lines = lines_of(data)
    number = next(i for i, line in enumerate(lines, start=1)
                  if b'"run_id":"run-0","seq":9,' in line)  # fmt: skip
    line = json.loads(lines[number - 1])
    payload = json.loads(line["payload"])
    payload["output"] = "forged"
    forged = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    said = problems(edited(data, number, {"payload": forged, "outputs": "forged"}))
    assert said == [f"line {number + 1}, run run-0, event 10: previous-hash does not match "
                    "event 9 (that event was edited, removed or moved)"]  # fmt: skip


# --- the tamper test: a whole chain rewritten in the database -----------------------------


def test_a_run_rewritten_in_the_database_fails_against_an_earlier_checkpoint(
    store: SQLiteStore,
) -> None:
    key = SigningKey.generate()
    checkpoint = sign_checkpoint(key, EXPORTED_AT, "auditor",
                                 heads(store, ["run-0", "run-1", "run-2"]))  # fmt: skip
    rewrite_output(store.path, "run-1", "c", ["forged"])

    record = store.get_run("run-1")  # the database's own check passes, as it must
    assert record.output == {"b": {"text": "B", "n": 1.5}, "c": ["forged"]}
    assert verify_chain("run-1", store.chain_links("run-1"), record.last_seq,
                        record.head_hash).intact  # fmt: skip
    assert not problems(export_of(store))  # and so does an export on its own

    said = problems(export_of(store, keys=[key.public_key], checkpoints=[checkpoint]),
                    [key.public_key])  # fmt: skip
    assert len(said) == 1, said
    assert "run run-1, event 11: the history up to event 11 is not what the checkpoint " \
           "of" in said[0]  # fmt: skip
    assert "rewritten after the checkpoint" in said[0]


def test_a_run_that_went_on_after_a_checkpoint_still_verifies_against_it(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    driver = Driver(store, roots_spec("x", "y"), "going")
    driver.start()
    key = SigningKey.generate()
    checkpoint = sign_checkpoint(key, EXPORTED_AT, None, heads(store, ["going"]))
    for claimed in driver.claim():
        driver.succeed(claimed.lease, claimed.lease.node)
    assert store.get_run("going").last_seq > checkpoint.heads[0].last_seq
    data = export_of(store, checkpoints=[checkpoint])
    assert not problems(data, [key.public_key])
    store.close()


# --- CSV, and what is not an export -------------------------------------------------------


def test_a_csv_export_has_a_row_per_event_for_spreadsheets(store: SQLiteStore) -> None:
    text = "".join(export_csv(store, resolved(store, Selection(runs=("run-1",)))))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 11
    assert list(rows[0]) == ["run_id", "workflow", "seq", "at", "at_epoch", "kind", "node",
                             "attempt", "item", "who", "inputs", "outputs", "prev_hash",
                             "payload"]  # fmt: skip
    links = store.chain_links("run-1")
    assert [(r["seq"], r["payload"], r["prev_hash"]) for r in rows] == [
        (str(link.seq), link.payload, link.prev_hash) for link in links
    ]
    succeeded = [r for r in rows if r["kind"] == "node_succeeded"]
    assert [(r["node"], json.loads(r["outputs"])) for r in succeeded] == [
        ("a", "A"), ("b", {"n": 1.5, "text": "B"}), ("c", ["C"])]  # fmt: skip
    with pytest.raises(ExportFormatError, match=r"CSV export.*cannot be verified.*jsonl"):
        verify_export(lines_of(text.encode()))


def test_a_csv_cell_a_spreadsheet_would_run_is_quoted_as_text(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    spec = roots_spec("x")
    driver = Driver(store, spec, "=cmd")
    driver.start()
    text = "".join(export_csv(store, Selection()))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows
    assert all(row["run_id"] == "'=cmd" for row in rows)
    store.close()


@pytest.mark.parametrize(("data", "said"), [
    (b"", "empty"),
    (b"hello\n", "not a keel audit export"),
    (b'{"type":"header","format":"other"}\n', "not a keel audit export"),
    (b'{"type":"header","format":"keel-audit-export","version":9}\n', "version 9"),
])  # fmt: skip
def test_what_is_not_an_export_is_refused_as_such(data: bytes, said: str) -> None:
    with pytest.raises(ExportFormatError, match=said):
        verify_export(lines_of(data))
