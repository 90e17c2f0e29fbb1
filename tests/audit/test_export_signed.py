"""The line types other parts of keel put in an export, verified offline: signed
checkpoints (and whose key: trusted, or only carried by the file), tombstones of pruned
runs, blobs and the events that refer to them, and approvals signed at decision time.

Their lines are made with the export's own writer, over runs recorded in a store or made
of payloads by hand (events keel records with a signature once approvals are signed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.audit.export_format import blob_name
from keel.audit.records import (
    RunHead,
    Tombstone,
    approval_signed_data,
    sign_checkpoint,
)
from keel.audit.signing import SigningKey
from keel.store.chain import ChainLink
from keel.store.sqlite import SQLiteStore
from tests.audit.exports import (
    EXPORTED_AT,
    chain,
    export_of,
    heads,
    problems,
    record_of,
    run_section,
    started,
    verified,
    written,
)
from tests.contract.conftest import finished_three_node_run

KEY = SigningKey.generate()
OTHER = SigningKey.generate()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "keel.db")
    for number in range(2):
        finished_three_node_run(opened, f"run-{number}")
    yield opened
    opened.close()


# --- checkpoints --------------------------------------------------------------------------


def test_a_checkpoint_by_a_trusted_key_verifies_without_a_warning(store: SQLiteStore) -> None:
    checkpoint = sign_checkpoint(KEY, EXPORTED_AT, "ops", heads(store, ["run-0", "run-1"]))
    report = verified(export_of(store, checkpoints=[checkpoint]), [KEY.public_key])
    assert report is not None
    assert (report.problems, report.warnings) == ([], [])
    assert report.counts["checkpointed_runs"] == 2
    assert report.trusted_keys == {KEY.key_id}


def test_a_key_taken_from_the_export_itself_verifies_with_a_warning(store: SQLiteStore) -> None:
    checkpoint = sign_checkpoint(KEY, EXPORTED_AT, "ops", heads(store, ["run-0"]))
    report = verified(export_of(store, keys=[KEY.public_key], checkpoints=[checkpoint]))
    assert report is not None
    assert report.intact
    assert report.warnings == [
        f"signatures by key {KEY.key_id} verify with a key taken from the export itself: "
        "pass --key to anchor trust in a key you hold"
    ]
    assert report.file_keys == {KEY.key_id}


@pytest.mark.parametrize("trusted", [[], [OTHER]])
def test_a_checkpoint_by_a_key_nobody_gave_fails(store: SQLiteStore, trusted: list[Any]) -> None:
    checkpoint = sign_checkpoint(KEY, EXPORTED_AT, "ops", heads(store, ["run-0"]))
    said = problems(export_of(store, checkpoints=[checkpoint]),
                    [key.public_key for key in trusted])  # fmt: skip
    assert said == [f"line 2: the checkpoint of 2027-01-15T08:00:00.000000Z: signed by "
                    f"key {KEY.key_id}, which is not a trusted key"]  # fmt: skip


def test_a_checkpoint_altered_after_signing_fails(store: SQLiteStore) -> None:
    signed = sign_checkpoint(KEY, EXPORTED_AT, "ops", heads(store, ["run-0"]))
    forged = type(signed)(signed.at, "someone else", signed.heads, signed.signature)
    said = problems(export_of(store, checkpoints=[forged]), [KEY.public_key])
    assert len(said) == 1
    assert "does not match what it signs" in said[0]


def test_a_checkpoint_of_more_events_than_exported_fails(store: SQLiteStore) -> None:
    record = store.get_run("run-0")
    later = RunHead("run-0", record.last_seq + 2, "f" * 64)
    checkpoint = sign_checkpoint(KEY, EXPORTED_AT, None, (later,))
    said = problems(export_of(store, checkpoints=[checkpoint]), [KEY.public_key])
    assert len(said) == 1
    assert said[0].startswith("line 3, run run-0: the checkpoint of")
    assert "up to event 13, but the export has 11 events (events were removed)" in said[0]


def test_a_checkpoint_of_runs_not_exported_is_counted_not_checked(store: SQLiteStore) -> None:
    checkpoint = sign_checkpoint(KEY, EXPORTED_AT, None, (RunHead("gone", 3, "e" * 64),
                                                          *heads(store, ["run-1"])))  # fmt: skip
    report = verified(export_of(store, checkpoints=[checkpoint]), [KEY.public_key])
    assert report is not None
    assert report.intact
    assert report.counts["checkpointed_runs_not_exported"] == 1


# --- runs made by hand: tombstones, blobs, signed approvals -------------------------------


def test_a_pruned_run_verifies_by_its_signed_tombstone() -> None:
    links = chain("pruned", [started(), {"kind": "run_cancelled", "reason": "", "by": "x"}],
                  100.0)  # fmt: skip
    record = record_of("pruned", links, status="cancelled")
    tombstone = tombstone_of(record.id, record.last_seq, record.head_hash, KEY)
    checkpoint = sign_checkpoint(KEY, 105.0, None, heads_of(record))
    data = written([[lambda w: w.run(record), lambda w: w.tombstone(tombstone)]],
                   checkpoints=[checkpoint])  # fmt: skip
    report = verified(data, [KEY.public_key])
    assert report is not None
    assert (report.problems, report.counts["tombstones"]) == ([], 1)


def test_a_tombstone_of_another_head_fails() -> None:
    links = chain("pruned", [started()], 100.0)
    record = record_of("pruned", links)
    other = tombstone_of(record.id, record.last_seq, "a" * 64, KEY)
    data = written([[lambda w: w.run(record), lambda w: w.tombstone(other)]])
    assert problems(data, [KEY.public_key]) == [
        "line 3, run pruned: the tombstone's head is not the run's head"
    ]


def test_an_unsigned_tombstone_verifies_with_a_warning() -> None:
    record = record_of("pruned", chain("pruned", [started()], 100.0))
    unsigned = tombstone_of(record.id, record.last_seq, record.head_hash, None)
    report = verified(written([[lambda w: w.run(record), lambda w: w.tombstone(unsigned)]]))
    assert report is not None
    assert report.intact
    assert report.warnings == ["1 run pruned without a signing key (keel prune --unsigned): "
                               "only the chain shows what was removed"]  # fmt: skip


def referring(run_id: str, name: str, size: int) -> list[ChainLink]:
    """A run whose node's output is the blob ``name``, as a store writes the reference."""
    output = {"$blob": name, "size": size}
    succeeded = {"$blobs": [["output"]], "kind": "node_succeeded", "node": "n", "attempt": 1,
                 "item": None, "output": output}  # fmt: skip
    return chain(run_id, [started(), succeeded], 100.0)


def test_a_blob_an_event_refers_to_must_be_there_and_hash_to_its_name() -> None:
    text = json.dumps({"rows": list(range(1000))}, separators=(",", ":"))
    name = blob_name(text)
    links = referring("big", name, len(text))
    section = run_section(record_of("big", links), links)
    assert not problems(written([[*section, lambda w: w.blob(name, text)]]))
    assert problems(written([section])) == [
        f"line 4, run big, event 2: refers to blob {name}, which is not in the export"
    ]
    said = problems(written([[*section, lambda w: w.blob(name, text + " ")]]))
    assert f"line 5: the blob named {name} does not hash to its name" in said


def test_a_value_that_only_looks_like_a_reference_is_data() -> None:
    looks = {"kind": "node_succeeded", "node": "n", "attempt": 1, "item": None,
             "output": {"$blob": "sha256:" + "0" * 64, "size": 1}}  # fmt: skip
    links = chain("plain", [started(), looks], 100.0)
    assert not problems(written([run_section(record_of("plain", links), links)]))


def approval(run_id: str, at: float, key: SigningKey, **change: Any) -> dict[str, Any]:
    """An ``approval_decided`` payload signed by ``key`` (what ``change`` alters is
    changed after signing)."""
    decided = {"kind": "approval_decided", "node": "review", "approved": True,
               "by": "ann", "data": {"limit": 500}, "comment": "ok"}  # fmt: skip
    signed = approval_signed_data(run_id, "review", True, "ann", {"limit": 500}, "ok", at)
    return {**decided, "signature": {"at": at, **key.sign(signed).to_data()}, **change}


@pytest.mark.parametrize(("change", "trusted", "said"), [
    ({}, [KEY], None),
    ({"data": {"limit": 5000}}, [KEY], "does not match what it signs"),
    ({"by": "bob"}, [KEY], "does not match what it signs"),
    ({}, [OTHER], "which is not a trusted key"),
])  # fmt: skip
def test_a_signed_approval_is_checked(change: dict[str, Any], trusted: list[SigningKey],
                                      said: str | None) -> None:  # fmt: skip
    at = 99.5  # signed before it was recorded
    links = chain("decided", [started(), approval("decided", at, KEY, **change)], 100.0)
    data = written([run_section(record_of("decided", links), links)])
    report = verified(data, [key.public_key for key in trusted])
    assert report is not None
    assert report.counts["signed_approvals"] == 1
    if said is None:
        assert report.intact, report.problems
        return
    (problem,) = report.problems
    assert str(problem).startswith("line 4, run decided, event 2: the approval's signature: ")
    assert said in str(problem)


def test_a_key_line_whose_id_is_not_its_keys_fails() -> None:
    data = written([], keys=[KEY.public_key]).replace(KEY.key_id.encode(), b"0" * 16, 1)
    said = problems(data)
    assert f"line 2: the key's id is {KEY.key_id}, not {'0' * 16}" in said


def heads_of(record: Any) -> tuple[RunHead, ...]:
    return (RunHead(record.id, record.last_seq, record.head_hash),)


def tombstone_of(run_id: str, last_seq: int, head: str, key: SigningKey | None) -> Tombstone:
    tombstone = Tombstone(run_id=run_id, workflow="hand", status="cancelled",
                          created_at=101.0, ended_at=102.0, last_seq=last_seq, head_hash=head,
                          pruned_at=200.0, by="ops", counts={"events": last_seq})  # fmt: skip
    if key is None:
        return tombstone
    return Tombstone(**{**_fields(tombstone), "signature": key.sign(tombstone.signed_data())})


def _fields(tombstone: Tombstone) -> dict[str, Any]:
    from dataclasses import fields

    return {item.name: getattr(tombstone, item.name) for item in fields(tombstone)}


def test_unsigned_approvals_of_people_are_counted_and_said() -> None:
    person = {"kind": "approval_decided", "node": "review", "approved": True, "by": "ann",
              "data": None, "comment": ""}  # fmt: skip
    keel_itself = {**person, "by": "keel"}
    links = chain("open", [started(), person, keel_itself], 100.0)
    report = verified(written([run_section(record_of("open", links), links)]))
    assert report is not None
    assert report.intact
    assert report.counts["unsigned_approvals"] == 1
    assert report.warnings == [
        "1 approval decided by a person where no signing key was configured: only the "
        "chain shows who decided"
    ]


def test_every_flipped_byte_of_an_export_with_every_line_type_fails() -> None:
    import random

    from keel.store.model_calls import ModelCall

    text = json.dumps({"rows": list(range(50))}, separators=(",", ":"))
    name = blob_name(text)
    big = referring("big", name, len(text))
    decided = chain("decided", [started(), approval("decided", 99.5, KEY)], 100.0)
    pruned = record_of("pruned", chain("pruned", [started()], 100.0))
    tombstone = tombstone_of(pruned.id, pruned.last_seq, pruned.head_hash, KEY)
    call = ModelCall(id="c1", run_id="big", workflow="hand", node="n", item=None, attempt=1,
                     seq=0, kind="model", state="answered", fingerprint="f", provider="p",
                     model="m", request={"q": "é"}, reserved=5, sent_at=101.0,
                     response={"a": 1}, cost=3, ended_at=102.0)  # fmt: skip
    data = written(
        [
            [*run_section(record_of("big", big), big), lambda w: w.blob(name, text),
             lambda w: w.model_call(call)],
            run_section(record_of("decided", decided), decided),
            [lambda w: w.run(pruned), lambda w: w.tombstone(tombstone)],
        ],
        keys=[KEY.public_key],
        checkpoints=[sign_checkpoint(KEY, 103.0, "ops", heads_of(pruned))],
    )  # fmt: skip
    report = verified(data, [KEY.public_key])
    assert report is not None
    assert report.intact, report.problems
    kinds = {json.loads(line)["type"] for line in data.splitlines()}
    assert kinds == {"header", "key", "checkpoint", "run", "event", "blob", "model_call",
                     "tombstone", "end"}  # fmt: skip
    rng = random.Random(7)
    for position in sorted({rng.randrange(len(data)) for _ in range(1500)}):
        flipped = bytearray(data)
        flipped[position] ^= rng.randrange(1, 256)
        report = verified(bytes(flipped), [KEY.public_key])
        assert report is None or not report.intact, (position, data[position - 20 : position + 20])
