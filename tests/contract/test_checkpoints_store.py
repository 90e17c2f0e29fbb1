"""The store's part of signed checkpoints: runs' heads read from the runs table, and
checkpoints and the keys that signed them kept exactly as given (the store signs and
checks nothing)."""

from __future__ import annotations

import hashlib

from keel.store import Store
from keel.store.heads import RunHead, StoredCheckpoint
from tests.contract.conftest import T0, Driver, finished_three_node_run, roots_spec

SIGNATURE = {"algorithm": "ed25519", "key_id": "0123456789abcdef", "value": "c2ln"}


def checkpoint(heads: tuple[RunHead, ...], at: float = T0, **changes: object) -> StoredCheckpoint:
    fields: dict[str, object] = {"at": at, "by": "auditor", "workflow": None,
                                 "signature": SIGNATURE, "heads": heads}  # fmt: skip
    fields.update(changes)
    return StoredCheckpoint(**fields)  # type: ignore[arg-type]


def test_run_heads_are_each_runs_last_event_and_hash_in_id_order(store: Store) -> None:
    finished_three_node_run(store, "run-b")
    Driver(store, roots_spec("x"), "run-a").start()
    Driver(store, roots_spec("x"), "run-c").start()

    heads = store.run_heads()

    assert [h.run_id for h in heads] == ["run-a", "run-b", "run-c"]
    for head in heads:
        record = store.get_run(head.run_id)
        assert (head.last_seq, head.head_hash) == (record.last_seq, record.head_hash)
    assert heads[1].last_seq == 11
    assert [h.run_id for h in store.run_heads("roots")] == ["run-a", "run-c"]
    assert store.run_heads("nothing-like-it") == []


def test_a_checkpoint_reads_back_as_it_was_given(store: Store) -> None:
    finished_three_node_run(store)
    heads = tuple(store.run_heads())

    first = store.add_checkpoint(checkpoint(heads), "ed25519:AAAA")
    second = store.add_checkpoint(checkpoint(heads[:0], T0 + 5, workflow="t", by=None),
                                  "ed25519:AAAA")  # fmt: skip

    assert second > first
    found = store.checkpoint(first)
    assert found is not None
    assert found == checkpoint(heads, id=first)
    assert found.key_id == "0123456789abcdef"
    listed = store.checkpoints()
    assert [(c.id, c.at, c.by, c.workflow, c.runs) for c in listed] == [
        (second, T0 + 5, None, "t", 0),
        (first, T0, "auditor", None, 1),
    ]
    assert [c.id for c in store.checkpoints(limit=1)] == [second]
    assert len(store.checkpoints(limit=None)) == 2
    assert store.checkpoint(second + 100) is None


def test_a_checkpoint_of_100_000_runs_is_kept_whole(store: Store) -> None:
    heads = tuple(
        RunHead(f"run-{n:06d}", n % 40 + 1, hashlib.sha256(str(n).encode()).hexdigest())
        for n in range(100_000)
    )
    stored = store.add_checkpoint(checkpoint(heads), "ed25519:AAAA")

    found = store.checkpoint(stored)

    assert found is not None
    assert found.heads == heads
    assert store.checkpoints()[0].runs == 100_000


def test_the_keys_that_signed_are_kept_with_their_first_use(store: Store) -> None:
    assert store.audit_keys() == []
    store.add_checkpoint(checkpoint((), T0 + 10), "ed25519:AAAA")
    store.add_checkpoint(checkpoint((), T0 + 20), "ed25519:AAAA")
    store.add_audit_key("fedcba9876543210", "ed25519:BBBB", T0 + 30)
    store.add_audit_key("0123456789abcdef", "ed25519:AAAA", T0 + 40)

    keys = store.audit_keys()

    assert [(k.key_id, k.public_key, k.first_used) for k in keys] == [
        ("0123456789abcdef", "ed25519:AAAA", T0 + 10),
        ("fedcba9876543210", "ed25519:BBBB", T0 + 30),
    ]
