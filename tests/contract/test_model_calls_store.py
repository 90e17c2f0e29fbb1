"""The ledger of calls on every backend: a call written when sent and once when ended,
numbered per node and item; budgets checked against what is spent and reserved in the
same transaction as the write, so racing workers (threads on stores of their own: other
connections) never both get the last dollar; spend summed per node and per workflow."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from keel.store import Store
from keel.store.model_calls import (
    CallEnded,
    CallSent,
    ModelCall,
    Spend,
    SpendLimits,
    SpendRefused,
)
from keel.store.sqlite import SQLiteStore
from tests.contract.conftest import T0
from tests.postgres import PostgresStore

DAY = 86_400.0


def sent(call_id: str, *, run_id: str = "run-1", workflow: str = "w", node: str = "a",
         item: int | None = None, attempt: int = 1, reserved: int = 10, at: float = T0,
         model: str = "gpt-x", request: Any = None) -> CallSent:  # fmt: skip
    return CallSent(
        id=call_id, run_id=run_id, workflow=workflow, node=node, item=item, attempt=attempt,
        kind="model", fingerprint=f"fp-{call_id}", provider="openai", model=model,
        request={"messages": [{"role": "user", "content": call_id}]} if request is None
        else request, reserved=reserved, at=at,
    )  # fmt: skip


def answered(call_id: str, cost: int, **fields: Any) -> CallEnded:
    return CallEnded(call_id, "answered", cost=cost, at=T0 + 1, **fields)


def places(calls: list[ModelCall]) -> list[tuple[str, str, int | None, int]]:
    return [(c.id, c.node, c.item, c.seq) for c in calls]


def another(store: Store) -> Store:
    """A second store on the same database: connections of its own."""
    if isinstance(store, SQLiteStore):
        return SQLiteStore(store.path)
    assert isinstance(store, PostgresStore)
    return PostgresStore(store.url)


@pytest.fixture
def others(store: Store) -> Iterator[list[Store]]:
    """Eight more stores on the test's database, closed afterwards."""
    with ExitStack() as stack:
        opened = []
        for _ in range(8):
            other = another(store)
            stack.callback(other.close)
            opened.append(other)
        yield opened


# --- what is kept -------------------------------------------------------------------------


def test_a_call_keeps_every_field_sent_and_ended(store: Store) -> None:
    request = {"messages": [{"role": "user", "content": "naïve ✓ " + "y" * 5000}],
               "settings": {"temperature": 0.5, "max_tokens": 100}, "tools": None}  # fmt: skip
    call = sent("c1", item=None, attempt=2, reserved=1_234_567_890_123, request=request)
    assert store.send_call(call) is None
    response = {"text": '{"x": 1}', "parsed": {"x": [1, 2.5, None, True]}}
    end = CallEnded("c1", "answered", response=response, error={"type": "T", "message": "m"},
                    finish_reason="stop", input_tokens=120, output_tokens=30,
                    cached_input_tokens=100, reasoning_tokens=7, usage_reported=False,
                    cost=987_654_321_012, price_source="genai-prices 0.2.5", latency=1.25,
                    at=T0 + 2.5)  # fmt: skip
    assert store.end_call(end)

    (stored,) = store.model_calls("run-1")
    assert stored == ModelCall(
        id="c1", run_id="run-1", workflow="w", node="a", item=None, attempt=2, seq=0,
        kind="model", state="answered", fingerprint="fp-c1", provider="openai",
        model="gpt-x", request=request, reserved=1_234_567_890_123, sent_at=T0,
        response=response, error={"type": "T", "message": "m"}, finish_reason="stop",
        input_tokens=120, output_tokens=30, cached_input_tokens=100, reasoning_tokens=7,
        usage_reported=False, cost=987_654_321_012, price_source="genai-prices 0.2.5",
        latency=1.25, ended_at=T0 + 2.5,
    )  # fmt: skip


def test_a_call_still_sent_reads_back_as_sent_with_its_map_item(store: Store) -> None:
    call = CallSent(id="t1", run_id="run-1", workflow="w", node="fan", item=3, attempt=1,
                    kind="tool", fingerprint="f", provider="", model="", request=None,
                    reserved=0, at=T0)  # fmt: skip
    store.send_call(call)

    (stored,) = store.model_calls("run-1")
    assert stored == ModelCall(
        id="t1", run_id="run-1", workflow="w", node="fan", item=3, attempt=1, seq=0,
        kind="tool", state="sent", fingerprint="f", provider="", model="", request=None,
        reserved=0, sent_at=T0,
    )  # fmt: skip
    assert stored.ended_at is None
    assert stored.charged == 0


def test_calls_are_numbered_per_node_and_item_in_the_order_sent(store: Store) -> None:
    for call in [sent("a0"), sent("i0", item=0), sent("a1", attempt=2), sent("b0", node="b"),
                 sent("i1", item=1), sent("i0'", item=0, attempt=2), sent("a2", attempt=3),
                 sent("other", run_id="run-2")]:  # fmt: skip
        assert store.send_call(call) is None

    assert places(store.model_calls("run-1")) == [
        ("a0", "a", None, 0), ("a1", "a", None, 1), ("a2", "a", None, 2),
        ("i0", "a", 0, 0), ("i0'", "a", 0, 1), ("i1", "a", 1, 0), ("b0", "b", None, 0),
    ]  # fmt: skip
    assert places(store.model_calls("run-1", node="b")) == [("b0", "b", None, 0)]
    assert places(store.model_calls("run-2")) == [("other", "a", None, 0)]
    assert store.model_calls("run-1", node="c") == []
    assert store.model_calls("run-3") == []


def test_a_call_ends_once(store: Store) -> None:
    store.send_call(sent("c1", reserved=50))

    assert store.end_call(answered("c1", 7, input_tokens=3))
    assert not store.end_call(CallEnded("c1", "possibly_billed", cost=50, at=T0 + 9))
    assert not store.end_call(answered("nobody", 1))

    (stored,) = store.model_calls("run-1")
    assert (stored.state, stored.cost, stored.input_tokens, stored.ended_at) == (
        "answered", 7, 3, T0 + 1)  # fmt: skip


# --- budgets -------------------------------------------------------------------------------


def test_a_run_limit_counts_what_ended_at_its_cost_and_what_is_in_flight_at_its_reservation(
    store: Store,
) -> None:
    limits = SpendLimits(run=100)
    assert store.send_call(sent("c1", reserved=60), limits) is None

    refused = store.send_call(sent("c2", reserved=50), limits)
    assert refused == SpendRefused("run", spent=60, limit=100, reserved=50)
    assert [c.id for c in store.model_calls("run-1")] == ["c1"]  # nothing written

    assert store.end_call(answered("c1", 10))
    assert store.send_call(sent("c2", reserved=50), limits) is None  # 10 + 50
    assert store.send_call(sent("c3", reserved=41), limits) == SpendRefused("run", 60, 100, 41)
    assert store.send_call(sent("c3", reserved=40), limits) is None  # exactly the limit
    assert store.send_call(sent("c4", reserved=0), limits) is None
    assert store.send_call(sent("c5", reserved=1), limits) == SpendRefused("run", 100, 100, 1)
    # other runs and calls without limits are not this run's budget
    assert store.send_call(sent("x", run_id="run-2", reserved=100), limits) is None
    assert store.send_call(sent("c5", reserved=1000)) is None


def test_failed_and_possibly_billed_calls_count_at_their_cost(store: Store) -> None:
    store.send_call(sent("c1", reserved=40))
    store.send_call(sent("c2", reserved=40))
    store.end_call(CallEnded("c1", "failed", error={"type": "Timeout"}, cost=5, at=T0))
    store.end_call(CallEnded("c2", "possibly_billed", cost=40, usage_reported=False, at=T0))

    refused = store.send_call(sent("c3", reserved=56), SpendLimits(run=100))
    assert refused == SpendRefused("run", 45, 100, 56)


def test_a_workflow_day_limit_counts_every_run_of_the_workflow_since_the_days_start(
    store: Store,
) -> None:
    day_start = T0 - 3600
    limits = SpendLimits(workflow_day=100, day_start=day_start)
    store.send_call(sent("yesterday", run_id="r0", reserved=500, at=day_start - 1))
    store.send_call(sent("other", run_id="r9", workflow="other", reserved=500))
    assert store.send_call(sent("c1", run_id="r1", reserved=30, at=day_start), limits) is None
    assert store.send_call(sent("c2", run_id="r2", reserved=30), limits) is None
    store.end_call(answered("c1", 20))

    refused = store.send_call(sent("c3", run_id="r3", reserved=51), limits)
    assert refused == SpendRefused("workflow_day", spent=50, limit=100, reserved=51)
    assert store.model_calls("r3") == []
    assert store.send_call(sent("c3", run_id="r3", reserved=50), limits) is None


def test_the_run_limit_is_checked_before_the_workflows_day(store: Store) -> None:
    store.send_call(sent("c1", reserved=90))
    limits = SpendLimits(run=100, workflow_day=100, day_start=T0 - 1)

    assert store.send_call(sent("c2", reserved=20), limits) == SpendRefused("run", 90, 100, 20)
    other_run = sent("c2", run_id="run-2", reserved=20)
    assert store.send_call(other_run, limits) == SpendRefused("workflow_day", 90, 100, 20)


def race(stores: list[Store], calls: list[CallSent], limits: SpendLimits) -> list[bool]:
    """Each store sends its call at once with the others; which were recorded."""
    barrier = threading.Barrier(len(stores))
    recorded = [False] * len(stores)
    errors: list[BaseException] = []

    def send(n: int) -> None:
        try:
            barrier.wait()
            recorded[n] = stores[n].send_call(calls[n], limits) is None
        except BaseException as exc:
            barrier.abort()
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return recorded


def test_racing_workers_never_both_get_the_last_of_a_run_budget(
    store: Store, others: list[Store]
) -> None:
    store.send_call(sent("before", reserved=10))
    calls = [sent(f"c{n}", attempt=n, reserved=30) for n in range(len(others))]

    recorded = race(others, calls, SpendLimits(run=100))

    assert sum(recorded) == 3  # 10 + 3 * 30 fits, a fourth would not
    stored = store.model_calls("run-1")
    assert sorted(c.seq for c in stored) == [0, 1, 2, 3]  # one number each
    assert {c.id for c in stored} == {"before"} | {
        c.id for c, r in zip(calls, recorded, strict=True) if r
    }


def test_racing_runs_never_both_get_the_last_of_a_workflows_day(
    store: Store, others: list[Store]
) -> None:
    calls = [sent(f"c{n}", run_id=f"r{n}", reserved=25) for n in range(len(others))]

    recorded = race(others, calls, SpendLimits(run=25, workflow_day=100, day_start=T0))

    assert sum(recorded) == 4
    assert store.workflow_spend(T0)[("w", "gpt-x")].cost == 100


def test_racing_calls_of_one_node_without_limits_get_a_number_each(
    store: Store, others: list[Store]
) -> None:
    calls = [sent(f"c{n}", item=2) for n in range(len(others))]

    assert all(race(others, calls, SpendLimits()))
    assert sorted(c.seq for c in store.model_calls("run-1")) == list(range(len(others)))


# --- spend ----------------------------------------------------------------------------------


def spent_calls(store: Store) -> None:
    """run-1: node a answered twice (one estimate) and one in flight, b possibly billed;
    run-2 (workflow w, another model) and run-3 (workflow v, yesterday) one each."""
    store.send_call(sent("a1", reserved=100))
    store.end_call(answered("a1", 40, input_tokens=10, output_tokens=20, cached_input_tokens=5,
                            reasoning_tokens=2))  # fmt: skip
    store.send_call(sent("a2", item=1, reserved=100))
    store.end_call(answered("a2", 60, input_tokens=1, output_tokens=2, usage_reported=False))
    store.send_call(sent("a3", reserved=70))
    store.send_call(sent("b1", node="b", reserved=90))
    store.end_call(CallEnded("b1", "possibly_billed", cost=90, usage_reported=False, at=T0))
    store.send_call(sent("x1", run_id="run-2", model="small", reserved=8))
    store.end_call(answered("x1", 3, input_tokens=100, output_tokens=1))
    store.send_call(sent("y1", run_id="run-3", workflow="v", reserved=5, at=T0 - DAY))
    store.end_call(answered("y1", 5, input_tokens=1000))


def test_a_runs_spend_per_node(store: Store) -> None:
    spent_calls(store)

    assert store.run_spend("run-1") == {
        "a": Spend(calls=3, input_tokens=11, output_tokens=22, cached_input_tokens=5,
                   reasoning_tokens=2, cost=40 + 60 + 70, possibly_billed=0, estimated=1),
        "b": Spend(calls=1, cost=90, possibly_billed=1, estimated=1),
    }  # fmt: skip
    assert store.run_spend("run-2") == {"a": Spend(calls=1, input_tokens=100, output_tokens=1,
                                                   cost=3)}  # fmt: skip
    assert store.run_spend("run-9") == {}


def test_spend_per_workflow_and_model_since_a_time(store: Store) -> None:
    spent_calls(store)

    assert store.workflow_spend(T0) == {
        ("w", "gpt-x"): Spend(calls=4, input_tokens=11, output_tokens=22,
                              cached_input_tokens=5, reasoning_tokens=2, cost=260,
                              possibly_billed=1, estimated=2),
        ("w", "small"): Spend(calls=1, input_tokens=100, output_tokens=1, cost=3),
    }  # fmt: skip
    assert set(store.workflow_spend(T0 - DAY)) == {("w", "gpt-x"), ("w", "small"), ("v", "gpt-x")}
    assert store.workflow_spend(T0 - DAY, workflow="v") == {
        ("v", "gpt-x"): Spend(calls=1, input_tokens=1000, cost=5)
    }
    assert store.workflow_spend(T0 + 1) == {}
