"""The ledger summed for people and metrics, on every backend: a run's calls per node,
item, kind, model and state (``run_call_sums``), and every call per workflow, kind,
model and state in the gauges' read (``StoreGauges.llm_calls``), which the writes keep
in a table of their own: always what summing the calls gives, with writers racing, and
filled from the calls recorded before it by its migration. A call in flight is summed
at its reservation; once ended, at its cost."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from keel.store import Store
from keel.store.gauges import StoreGauges
from keel.store.model_calls import CallEnded, CallSent, CallSums
from keel.store.sqlite import SQLiteStore
from tests.contract.conftest import T0
from tests.llm.ledgerflows import CHEAP, MODEL, seed
from tests.postgres import PostgresStore

#: what the kept sums must always be: the calls themselves, summed
_SUMMED = """
SELECT workflow, kind, model, state, count(*), sum(input_tokens), sum(output_tokens),
       sum(cached_input_tokens), sum(reasoning_tokens),
       sum(CASE WHEN state = 'sent' THEN reserved ELSE cost END),
       sum(CASE WHEN usage_reported THEN 0 ELSE 1 END)
FROM model_calls GROUP BY workflow, kind, model, state
"""


def summed(store: Store) -> dict[tuple[str, str, str, str], CallSums]:
    with store.dialect.read() as cur:  # type: ignore[attr-defined]
        rows = cur.execute(_SUMMED).fetchall()
    return {tuple(row[:4]): CallSums(*(int(v) for v in row[4:])) for row in rows}


def kept(store: Store) -> dict[tuple[str, str, str, str], CallSums]:
    """The sums the writes kept, groups that hold nothing left out."""
    return {key: sums for key, sums in store.gauges(T0, T0).llm_calls.items() if sums.calls}


def test_a_run_without_calls_sums_to_nothing(store: Store) -> None:
    assert store.run_call_sums("no-such-run") == {}
    assert store.gauges(T0, T0).llm_calls == {}
    assert store.gauges(T0, T0) == StoreGauges()


def test_a_runs_calls_are_summed_per_node_item_kind_model_and_state(store: Store) -> None:
    seeded = seed(store)

    sums = store.run_call_sums(seeded.run)

    assert sums == {
        ("classify", None, "model", MODEL, "answered"): CallSums(1, 120, 30, 100, 0, 42_000, 0),
        ("draft", 0, "model", MODEL, "answered"): CallSums(2, 2_000, 450, 0, 50, 2_100_000, 1),
        ("draft", 1, "model", MODEL, "answered"): CallSums(1, 1_000, 200, 0, 50, 1_000_000, 0),
        ("draft", 1, "model", MODEL, "failed"): CallSums(1, 0, 0, 0, 0, 0, 0),
        # in flight: its reservation
        ("draft", 1, "model", MODEL, "sent"): CallSums(1, 0, 0, 0, 0, 2_500_000, 0),
        ("draft", 2, "model", MODEL, "answered"): CallSums(1, 1_000, 200, 0, 50, 1_000_000, 0),
        ("draft", 2, "model", MODEL, "possibly_billed"): CallSums(1, 0, 0, 0, 0, 3_000_000, 0),
    }  # fmt: skip
    assert store.run_call_sums(seeded.empty) == {}
    # the same money as the run's spend per node
    spend = store.run_spend(seeded.run)
    for node in ("classify", "draft"):
        assert sum(s.cost for k, s in sums.items() if k[0] == node) == spend[node].cost


def test_the_gauges_sum_every_call_per_workflow_kind_model_and_state(store: Store) -> None:
    seeded = seed(store)

    found = store.gauges(T0, T0).llm_calls
    # a group whose calls all ended keeps its sent row, at nothing
    assert found.pop(("agents", "model", CHEAP, "sent")) == CallSums()
    assert found.pop(("agents", "tool", "lookup", "sent")) == CallSums()

    assert found == {
        ("tickets", "model", MODEL, "answered"): CallSums(5, 4_120, 880, 100, 150, 4_142_000, 1),
        ("tickets", "model", MODEL, "failed"): CallSums(1),
        ("tickets", "model", MODEL, "sent"): CallSums(1, cost=2_500_000),
        ("tickets", "model", MODEL, "possibly_billed"): CallSums(1, cost=3_000_000),
        ("agents", "model", CHEAP, "answered"): CallSums(1, 300, 40, 0, 0, 700, 0),
        ("agents", "tool", "lookup", "answered"): CallSums(1),
    }  # fmt: skip

    # the call in flight ends: it moves from sent to answered, at its cost
    store.end_call(CallEnded("d1c", "answered", input_tokens=10, output_tokens=5, cost=900,
                             at=T0 + 5))  # fmt: skip
    after = store.gauges(T0, T0).llm_calls
    # none in flight now: the group's sent row stays, at nothing
    assert after[("tickets", "model", MODEL, "sent")] == CallSums()
    answered = after[("tickets", "model", MODEL, "answered")]
    assert (answered.calls, answered.cost) == (6, 4_142_900)
    assert store.run_call_sums(seeded.run)[("draft", 1, "model", MODEL, "answered")] == (
        CallSums(2, 1_010, 205, 0, 50, 1_000_900, 0))  # fmt: skip


def test_the_kept_sums_are_the_calls_summed_after_any_writes(store: Store) -> None:
    seed(store)
    assert kept(store) == summed(store)
    rng = random.Random(7)
    open_calls: list[str] = []
    for n in range(60):
        if open_calls and rng.random() < 0.5:
            call_id = open_calls.pop(rng.randrange(len(open_calls)))
            state = rng.choice(["answered", "answered", "failed", "possibly_billed"])
            store.end_call(CallEnded(call_id, state, input_tokens=rng.randrange(500),  # type: ignore[arg-type]
                                     output_tokens=rng.randrange(100), cost=rng.randrange(10**6),
                                     usage_reported=rng.random() < 0.8, at=T0 + n))  # fmt: skip
            continue
        call_id = f"r{n}"
        assert store.send_call(CallSent(
            call_id, f"run-{n % 3}", rng.choice(["w1", "w2"]), "a", None, 1,
            rng.choice(["model", "tool"]), "fp", "p", rng.choice(["m1", "m2"]), {},
            rng.randrange(10**6), T0 + n)) is None  # fmt: skip
        open_calls.append(call_id)
    # an end that changes nothing (ended already, or no such call) adds nothing
    assert not store.end_call(CallEnded("c1", "failed", cost=99, at=T0))
    assert not store.end_call(CallEnded("nope", "answered", cost=99, at=T0))

    assert kept(store) == summed(store)


def another(store: Store) -> Store:
    if isinstance(store, SQLiteStore):
        return SQLiteStore(store.path)
    assert isinstance(store, PostgresStore)
    return PostgresStore(store.url)


@pytest.fixture
def writers(store: Store) -> Iterator[list[Store]]:
    """Six more stores on the test's database: connections of their own."""
    with ExitStack() as stack:
        opened = []
        for _ in range(6):
            other = another(store)
            stack.callback(other.close)
            opened.append(other)
        yield opened


def test_racing_writers_of_one_workflow_and_model_keep_the_sums_exact(
    store: Store, writers: list[Store]
) -> None:
    start = threading.Barrier(len(writers))
    failed: list[BaseException] = []

    def write(index: int, mine: Store) -> None:
        try:
            start.wait()
            for n in range(15):  # each its own run; every call in the same group
                call_id = f"w{index}-{n}"
                assert mine.send_call(CallSent(call_id, f"run-{index}", "w", "a", n, 1, "model",
                                               "fp", "p", "m", {}, 1_000, T0)) is None  # fmt: skip
                mine.end_call(
                    CallEnded(
                        call_id,
                        "answered" if n % 4 else "failed",
                        input_tokens=n,
                        output_tokens=1,
                        cost=10 * n,
                        at=T0,
                    )
                )
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=write, args=(i, s)) for i, s in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failed == []
    sums = kept(store)
    assert sums == summed(store)
    answered = sums[("w", "model", "m", "answered")]
    assert answered.calls == len(writers) * 11
    assert store.gauges(T0, T0).llm_calls[("w", "model", "m", "sent")] == CallSums()


def test_the_migration_fills_the_sums_from_the_calls_recorded_before_it(store: Store) -> None:
    seed(store)
    expected = kept(store)
    # the database as it was before the sums were kept: the calls alone
    version = 17 if isinstance(store, SQLiteStore) else 11
    with store.dialect.write() as cur:  # type: ignore[attr-defined]
        cur.execute("DROP TABLE model_call_sums")
        cur.execute(f"DELETE FROM schema_migrations WHERE version = {version}")
    upgraded = (SQLiteStore(store.path) if isinstance(store, SQLiteStore)
                else PostgresStore(store.url, upgrade=True))  # type: ignore[union-attr]  # fmt: skip
    try:
        assert kept(upgraded) == expected == summed(upgraded)
    finally:
        upgraded.close()
