"""The ledger's documents and money as people read it: exact decimal dollars beside the
integer nano-dollars, a cheap call never shown as $0.0000, a run's ledger per node (in
the plan's order, map items counted, possibly billed and in-flight calls apart) and a
workflow's spend per model."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.runtime.views.ledger import dollars, exact_dollars, ledger_document, spend_document
from keel.store.model_calls import CallSums, Spend
from keel.store.sqlite import SQLiteStore
from tests.llm.ledgerflows import MODEL, seed


@pytest.mark.parametrize(("nanos", "shown"), [
    (0, "$0"), (1, "$0.000000001"), (700, "$0.00000070"), (42_000, "$0.000042"),
    (420_000, "$0.00042"), (4_200_000, "$0.0042"), (9_999_999, "$0.0100"),
    (10_000_000, "$0.0100"), (1_234_500_000, "$1.2345"), (99_999_940_000, "$99.9999"),
    (99_999_990_000, "$100.00"),
    (100_000_000_000, "$100.00"), (1_234_567_000_000_000, "$1,234,567.00"),
])  # fmt: skip
def test_money_for_people_shows_two_significant_digits_below_a_cent(nanos: int, shown: str) -> None:
    assert dollars(nanos) == shown


def test_money_for_programs_is_exact() -> None:
    assert exact_dollars(1) == "0.000000001"
    assert exact_dollars(42_000) == "0.000042000"
    assert exact_dollars(123_456_789_012_345_678) == "123456789.012345678"


def test_a_run_without_calls_has_no_ledger() -> None:
    assert ledger_document({}) is None


def test_the_ledger_lists_nodes_in_the_plans_order_with_their_items_and_states(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    seeded = seed(store)
    sums = store.run_call_sums(seeded.run)
    store.close()

    ledger = ledger_document(sums, ["classify", "draft", "route"])

    assert ledger is not None
    classify, draft = ledger["nodes"]
    assert classify == {
        "node": "classify", "items": None, "models": [MODEL], "calls": 1, "model_calls": 1,
        "tool_calls": 0, "input_tokens": 120, "output_tokens": 30, "cached_input_tokens": 100,
        "reasoning_tokens": 0, "cost_nanos": 42_000, "cost": "0.000042000", "answered": 1,
        "failed": 0, "possibly_billed": 0, "possibly_billed_cost_nanos": 0, "in_flight": 0,
        "in_flight_cost_nanos": 0, "estimated": 0,
    }  # fmt: skip
    assert (draft["node"], draft["items"], draft["calls"]) == ("draft", 3, 7)
    assert (draft["answered"], draft["failed"], draft["possibly_billed"], draft["in_flight"],
            draft["estimated"]) == (4, 1, 1, 1, 1)  # fmt: skip
    # in flight at its reservation, possibly billed at its reservation for good
    assert draft["cost_nanos"] == 3_100_000 + 2_500_000 + 3_000_000 + 1_000_000
    assert (draft["in_flight_cost_nanos"], draft["possibly_billed_cost_nanos"]) == (
        2_500_000, 3_000_000)  # fmt: skip
    total = ledger["total"]
    assert (total["calls"], total["input_tokens"], total["output_tokens"]) == (8, 4_120, 880)
    assert total["cost_nanos"] == 42_000 + draft["cost_nanos"]
    assert total["cost"] == exact_dollars(total["cost_nanos"])
    assert "items" not in total


def test_nodes_the_plan_does_not_name_come_after_its_own_by_name() -> None:
    one = CallSums(1, cost=5)
    sums = {("zeta", None, "model", "m", "answered"): one,
            ("alpha", None, "model", "m", "answered"): one,
            ("b", None, "tool", "lookup", "answered"): one}  # fmt: skip
    ledger = ledger_document(sums, ["b"])
    assert ledger is not None
    assert [n["node"] for n in ledger["nodes"]] == ["b", "alpha", "zeta"]
    # a tool's name is not a model
    assert ledger["nodes"][0]["models"] == []
    assert ledger["nodes"][0]["tool_calls"] == 1


def test_a_workflows_spend_is_listed_per_model_with_its_total() -> None:
    found = {("w", "m1"): Spend(2, 10, 5, 0, 0, 1_500, 1, 0),
             ("a", "m2"): Spend(1, 3, 1, 0, 0, 7, 0, 1)}  # fmt: skip
    doc = spend_document(found, 123.0, None)
    assert [(r["workflow"], r["model"]) for r in doc["spend"]] == [("a", "m2"), ("w", "m1")]
    assert doc["total"] == {"calls": 3, "input_tokens": 13, "output_tokens": 6,
                            "cached_input_tokens": 0, "reasoning_tokens": 0,
                            "cost_nanos": 1_507, "cost": "0.000001507", "possibly_billed": 1,
                            "estimated": 1}  # fmt: skip
    assert doc["since"] == 123.0
    assert doc["workflow"] is None
