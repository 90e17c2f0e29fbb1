"""Signed checkpoints catch what the hash chain cannot: a history edited in the database
with every later link and the run's head recomputed. ``keel verify`` passes such a
run (its chain is intact, as it must be), ``check_checkpoint`` fails it and names it.

The intruder works on the database itself (``sqlite3`` on the file, ``psycopg`` on the
schema), knowing how keel hashes links: the strongest attacker short of holding the
signing key. Also here: rotation (old checkpoints verify while the old key is trusted),
approvals whose data was edited, and a checkpoint forged to match a rewritten database.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any

import pytest

from keel.audit.checkpoints import check_checkpoint, make_checkpoint
from keel.audit.signing import PublicKey, SigningKey
from keel.engine import NodeSucceeded
from keel.runtime.client import Client
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.operations.interventions import approve
from keel.spec import parse_spec
from keel.store import Store
from keel.store.chain import GENESIS, canonical_json, link_hash
from keel.store.heads import StoredCheckpoint
from keel.store.sqlite import SQLiteStore
from tests.contract.conftest import T0, Driver, finished_three_node_run, roots_spec
from tests.postgres import PostgresStore

RUN = "run-1"
BYSTANDER = "bystander"


# --- the intruder -------------------------------------------------------------------------


@contextmanager
def database(store: Store) -> Iterator[tuple[Any, str]]:
    """A connection of the intruder's own to the store's database, and its placeholder;
    committed when the block ends."""
    if isinstance(store, SQLiteStore):
        with closing(sqlite3.connect(store.path)) as conn, conn:
            yield conn, "?"
        return
    import psycopg

    assert isinstance(store, PostgresStore)
    with psycopg.connect(store.conninfo) as conn:
        conn.execute(f'SET search_path TO "{store.schema}"')
        yield conn, "%s"


def rewrite(store: Store, run_id: str, seq: int, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit event ``seq`` of the run, then recompute every link after it and the run's
    head hash, consistently: nothing the chain checks is left broken."""
    with database(store) as (conn, p):
        rows = conn.execute(
            f"SELECT seq, at, data FROM events WHERE run_id = {p} ORDER BY seq", (run_id,)
        ).fetchall()
        prev = GENESIS
        for number, at, data in rows:
            if number == seq:
                event = json.loads(data)
                change(event)
                data = canonical_json(event)
                assert data != rows[seq - 1][2], "the change changed nothing"
            conn.execute(f"UPDATE events SET data = {p}, prev_hash = {p} "
                         f"WHERE run_id = {p} AND seq = {p}",
                         (data, prev, run_id, number))  # fmt: skip
            prev = link_hash(prev, run_id, number, at, data)
        conn.execute(f"UPDATE runs SET head_hash = {p} WHERE id = {p}", (prev, run_id))


def verified(store: Store, run_id: str) -> dict[str, Any]:
    """What ``keel verify RUN`` reports."""
    found: dict[str, Any] = Client(store=store).verify(run_id)
    return found


def seq_of(store: Store, run_id: str, kind: type, node: str) -> int:
    return next(
        s.seq
        for s in store.history(run_id)
        if isinstance(s.event, kind) and getattr(s.event, "node", None) == node
    )


def trusting(*keys: SigningKey) -> dict[str, PublicKey]:
    return {key.key_id: key.public_key for key in keys}


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def recorded(store: Store) -> Store:
    """A finished run of 11 events and a bystander."""
    finished_three_node_run(store, RUN)
    Driver(store, roots_spec("x"), BYSTANDER).start()
    return store


# --- the tamper test ----------------------------------------------------------------------


def test_a_consistently_rewritten_run_passes_verify_but_fails_its_checkpoint(
    recorded: Store, key: SigningKey
) -> None:
    store = recorded
    checkpoint = make_checkpoint(store, key, at=T0 + 100, by="auditor")
    assert check_checkpoint(store, checkpoint, trusting(key)).ok
    seq = seq_of(store, RUN, NodeSucceeded, "a")

    rewrite(store, RUN, seq, lambda event: event.update(output="Z"))

    assert store.history(RUN)[seq - 1].event == NodeSucceeded(node="a", attempt=1, output="Z")
    report = verified(store, RUN)
    assert report["intact"], report  # keel verify passes: the chain was recomputed
    assert report["problems"] == []
    assert report["mismatches"] == []
    found = check_checkpoint(store, store.checkpoint(checkpoint.id or 0) or checkpoint,
                             trusting(key))  # fmt: skip
    assert not found.ok
    assert found.signature_problem is None  # the checkpoint itself is genuine
    assert found.failed_runs == [RUN]  # named; the bystander is as signed
    ((run_id, problem),) = found.run_problems
    assert run_id == RUN
    assert "not what checkpoint" in problem
    assert "rewritten" in problem


def test_a_run_that_went_on_after_its_checkpoint_is_as_signed(
    store: Store, key: SigningKey
) -> None:
    driver = Driver(store, roots_spec("a", "b"), RUN)
    driver.start()
    checkpoint = make_checkpoint(store, key, at=T0 + 1, by=None)
    first, second = driver.claim()
    driver.succeed(first.lease, 1)
    driver.succeed(second.lease, 2)
    assert store.get_run(RUN).last_seq > checkpoint.heads[0].last_seq

    assert check_checkpoint(store, checkpoint, trusting(key)).ok


def test_an_edit_after_a_checkpoint_is_the_next_checkpoints_to_catch(
    store: Store, key: SigningKey
) -> None:
    driver = Driver(store, roots_spec("a", "b"), RUN)
    driver.start()
    early = make_checkpoint(store, key, at=T0 + 1, by=None)
    for claimed in driver.claim():
        driver.succeed(claimed.lease, claimed.lease.node)
    late = make_checkpoint(store, key, at=T0 + 100, by=None)
    after_early = early.heads[0].last_seq + 1

    rewrite(store, RUN, after_early, lambda event: event.update(worker="someone-else"))

    assert check_checkpoint(store, early, trusting(key)).ok  # signed before that event
    assert check_checkpoint(store, late, trusting(key)).failed_runs == [RUN]


def test_a_checkpoint_forged_to_match_a_rewritten_database_fails_its_signature(
    recorded: Store, key: SigningKey
) -> None:
    genuine = make_checkpoint(recorded, key, at=T0 + 100, by="auditor")
    rewrite(recorded, RUN, 3, lambda event: event.update(worker="someone-else"))
    forged = StoredCheckpoint(genuine.at, genuine.by, None, genuine.signature,
                              tuple(recorded.run_heads()))  # fmt: skip
    forged_id = recorded.add_checkpoint(forged, key.public_key.to_text())

    found = check_checkpoint(recorded, recorded.checkpoint(forged_id) or forged, trusting(key))

    assert found.run_problems == []  # the heads are the database's own
    assert found.signature_problem is not None
    assert "does not match what it signs" in found.signature_problem
    assert not found.ok


def test_a_run_whose_events_were_deleted_fails(recorded: Store, key: SigningKey) -> None:
    checkpoint = make_checkpoint(recorded, key, at=T0 + 100, by=None)
    with database(recorded) as (conn, p):
        conn.execute(f"DELETE FROM events WHERE run_id = {p}", (BYSTANDER,))

    found = check_checkpoint(recorded, checkpoint, trusting(key))

    assert found.failed_runs == [BYSTANDER]
    assert "history is gone" in found.run_problems[0][1]


# --- rotation -----------------------------------------------------------------------------


def test_old_checkpoints_verify_while_the_old_key_is_trusted(
    recorded: Store, key: SigningKey
) -> None:
    old = make_checkpoint(recorded, key, at=T0 + 100, by=None)
    rotated = SigningKey.generate()
    new = make_checkpoint(recorded, rotated, at=T0 + 200, by=None)

    assert check_checkpoint(recorded, old, trusting(key, rotated)).ok
    assert check_checkpoint(recorded, new, trusting(key, rotated)).ok
    untrusted = check_checkpoint(recorded, old, trusting(rotated))
    assert not untrusted.ok
    assert untrusted.run_problems == []
    assert untrusted.signature_problem == (
        f"signed by key {key.key_id}, which is not a trusted key"
    )
    assert check_checkpoint(recorded, new, trusting(rotated)).ok
    assert [k.key_id for k in recorded.audit_keys()] == [key.key_id, rotated.key_id]


# --- approvals ----------------------------------------------------------------------------

GATE = parse_spec({"name": "gate", "nodes": [{"id": "ok", "kind": "approval", "title": "OK?"}]})


def decided(store: Store, signer: SigningKey | None, run_id: str = RUN) -> str:
    clock = FakeClock(T0)
    start_run(store, GATE, {}, clock=clock, run_id=run_id)
    clock.advance(5)
    approve(store, run_id, "ok", data={"limit": 100}, comment="fine", by="ann", clock=clock,
            signer=signer)  # fmt: skip
    return run_id


def test_an_approval_is_signed_at_decision_time(store: Store, key: SigningKey) -> None:
    decided(store, key)

    (event,) = [s.event for s in store.history(RUN) if s.event.kind == "approval_decided"]
    assert event.signature is not None  # type: ignore[union-attr]
    assert event.signature["key_id"] == key.key_id  # type: ignore[union-attr]
    assert event.signature["at"] == T0 + 5  # type: ignore[union-attr]
    assert [k.key_id for k in store.audit_keys()] == [key.key_id]
    checkpoint = make_checkpoint(store, key, at=T0 + 10, by=None)
    found = check_checkpoint(store, checkpoint, trusting(key))
    assert found.ok
    assert (found.approvals.signed, found.approvals.unsigned) == (1, [])


@pytest.mark.parametrize(
    "edit",
    [
        lambda event: event["data"].update(limit=1_000_000),
        lambda event: event.update(comment="fine by me"),
        lambda event: event.update(by="bob"),
        lambda event: event.update(approved=False),
    ],
    ids=["data", "comment", "decider", "decision"],
)
def test_an_approval_edited_afterwards_fails_its_signature(
    store: Store, key: SigningKey, edit: Callable[[dict[str, Any]], None]
) -> None:
    decided(store, key)
    decided(store, key, BYSTANDER)
    checkpoint = make_checkpoint(store, key, at=T0 + 10, by=None)
    seq = next(s.seq for s in store.history(RUN) if s.event.kind == "approval_decided")

    rewrite(store, RUN, seq, edit)
    # re-sign the checkpoint too: only the approval's own signature is left to catch it
    resigned = make_checkpoint(store, key, at=T0 + 20, by=None)

    assert verified(store, RUN)["intact"]
    for stored in (checkpoint, resigned):
        found = check_checkpoint(store, stored, trusting(key))
        assert found.failed_runs == [RUN]
    found = check_checkpoint(store, resigned, trusting(key))
    assert found.run_problems == []
    ((run_id, problem),) = found.approvals.problems
    assert run_id == RUN
    assert "approval 'ok'" in problem
    assert "does not match what it signs" in problem
    assert found.approvals.signed == 1  # the bystander's


def test_an_approval_by_an_untrusted_key_fails(store: Store, key: SigningKey) -> None:
    decided(store, SigningKey.generate())
    checkpoint = make_checkpoint(store, key, at=T0 + 10, by=None)

    found = check_checkpoint(store, checkpoint, trusting(key))

    ((run_id, problem),) = found.approvals.problems
    assert run_id == RUN
    assert "not a trusted key" in problem


def test_an_unsigned_approval_is_a_warning_not_a_failure(store: Store, key: SigningKey) -> None:
    decided(store, None)
    checkpoint = make_checkpoint(store, key, at=T0 + 10, by=None)

    found = check_checkpoint(store, checkpoint, trusting(key))

    assert found.ok
    assert found.approvals.signed == 0
    assert found.approvals.unsigned == [f"run {RUN}: approval 'ok' (event 3, decided by ann)"]
    (event,) = [s.event for s in store.history(RUN) if s.event.kind == "approval_decided"]
    assert event.signature is None  # type: ignore[union-attr]
    assert '"signature"' not in store.chain_links(RUN)[2].payload  # old shape, as before


# --- pruned runs against a checkpoint: their tombstone's head ---------------------------


def test_a_pruned_run_is_checked_by_its_tombstone_against_the_signed_head(store: Store) -> None:
    from keel.audit.retention import prune

    key = SigningKey.generate()
    keys = {key.key_id: key.public_key}
    honest = finished_three_node_run(store, "honest").run_id
    forged = finished_three_node_run(store, "forged").run_id
    stored = make_checkpoint(store, key, at=T0 + 500, by="auditor")
    rewrite(store, forged, 2, lambda event: event.update(attempt_note="edited"))
    report = prune(store, T0 + 10_000, now=lambda: T0 + 20_000, key=key)
    assert sorted(report.pruned) == sorted([honest, forged])

    found = check_checkpoint(store, stored, keys)

    assert not found.ok
    assert found.changed_runs == [forged]
    ((run_id, problem),) = found.run_problems
    assert run_id == forged
    assert problem.startswith("pruned with a head other than the one signed")
    assert found.pruned_as_signed == [honest]
    after = make_checkpoint(store, key, at=T0 + 30_000, by="auditor")
    checked = check_checkpoint(store, after, keys)
    assert checked.ok, checked.run_problems
    assert sorted(checked.pruned_as_signed) == sorted([honest, forged])
