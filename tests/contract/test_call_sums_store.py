"""The ledger summed for people and metrics, on every backend: a run's calls per node,
item, kind, model and state (``run_call_sums``), and every call per workflow, kind,
model and state in the gauges' read (``StoreGauges.llm_calls``). A call in flight is
summed at its reservation; once ended, at its cost."""

from __future__ import annotations

from keel.store import Store
from keel.store.gauges import StoreGauges
from keel.store.model_calls import CallEnded, CallSums
from tests.contract.conftest import T0
from tests.llm.ledgerflows import CHEAP, MODEL, seed


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
    assert ("tickets", "model", MODEL, "sent") not in after
    answered = after[("tickets", "model", MODEL, "answered")]
    assert (answered.calls, answered.cost) == (6, 4_142_900)
    assert store.run_call_sums(seeded.run)[("draft", 1, "model", MODEL, "answered")] == (
        CallSums(2, 1_010, 205, 0, 50, 1_000_900, 0))  # fmt: skip
