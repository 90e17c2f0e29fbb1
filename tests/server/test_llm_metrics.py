"""The LLM ledger as metrics, read from the store at scrape time: calls ended by state,
calls in flight, tokens by kind and cost per workflow and model, tool calls by tool;
parsed with prometheus_client's own parsers (both formats). They are counters of ended
calls only, so a call that ends never makes one go down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from keel.runtime.clock import FakeClock
from keel.runtime.metrics import Metrics
from keel.server import create_app
from keel.server.gauges import StoreCollector
from keel.server.identities import create_token
from keel.store import Store
from keel.store.model_calls import CallEnded
from keel.store.sqlite import SQLiteStore
from tests.contract.conftest import BACKENDS
from tests.llm.ledgerflows import CHEAP, MODEL, T0, seed
from tests.postgres import PostgresStore
from tests.server.test_metrics import Scraped, scrape

TICKETS = {"workflow": "tickets", "model": MODEL}


def test_the_ledger_is_exposed_per_workflow_and_model(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    seed(store)
    viewer, _ = create_token(store, "viewer-1", "viewer")
    with TestClient(create_app(store, rate=0)) as client:
        scraped = scrape(client, viewer)
        openmetrics = client.get("/metrics", headers={
            "Authorization": f"Bearer {viewer}",
            "Accept": "application/openmetrics-text; version=1.0.0"}).text  # fmt: skip
    store.close()

    assert scraped.labelled("keel_llm_calls_total") == {
        (("model", MODEL), ("state", "answered"), ("workflow", "tickets")): 5,
        (("model", MODEL), ("state", "failed"), ("workflow", "tickets")): 1,
        (("model", MODEL), ("state", "possibly_billed"), ("workflow", "tickets")): 1,
        (("model", CHEAP), ("state", "answered"), ("workflow", "agents")): 1,
    }  # fmt: skip
    assert scraped.labelled("keel_llm_calls_in_flight") == {
        (("model", MODEL), ("workflow", "tickets")): 1,
        (("model", CHEAP), ("workflow", "agents")): 0}  # fmt: skip
    tokens = {kind: scraped.value("keel_llm_tokens_total", **TICKETS, kind=kind)
              for kind in ("input", "output", "cached_input", "reasoning")}  # fmt: skip
    assert tokens == {"input": 4_120, "output": 880, "cached_input": 100, "reasoning": 150}
    # ended calls only: answered and possibly billed (at its reservation); not in flight
    assert scraped.value("keel_llm_cost_dollars_total", **TICKETS) == pytest.approx(0.007142)
    assert scraped.value("keel_llm_cost_dollars_total", workflow="agents",
                         model=CHEAP) == pytest.approx(0.0000007)  # fmt: skip
    assert scraped.labelled("keel_llm_tool_calls_total") == {
        (("state", "answered"), ("tool", "lookup"), ("workflow", "agents")): 1}  # fmt: skip
    # a tool is never a model
    assert all(dict(k)["model"] != "lookup" for k in scraped.labelled("keel_llm_tokens_total"))
    parsed = {f.name: f.type for f in openmetrics_families(openmetrics)}
    assert parsed["keel_llm_calls"] == parsed["keel_llm_cost_dollars"] == "counter"
    assert parsed["keel_llm_calls_in_flight"] == "gauge"


@pytest.fixture(params=sorted(BACKENDS))
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = BACKENDS[request.param](tmp_path)
    yield opened
    opened.close()
    if isinstance(opened, PostgresStore):
        opened.drop_schema()


def collected(store: Store) -> Scraped:
    metrics = Metrics()
    metrics.add(StoreCollector(store, FakeClock(T0 + 10), ttl=0.0))
    return Scraped(metrics.exposition()[0].decode())


def test_a_call_that_ends_only_ever_adds_to_the_counters(any_store: Store) -> None:
    seed(any_store)
    before = collected(any_store)

    # the call in flight (reserved $0.0025) ends for less: no counter goes down
    any_store.end_call(CallEnded("d1c", "answered", input_tokens=10, output_tokens=5,
                                 cost=900, at=T0 + 5))  # fmt: skip
    after = collected(any_store)

    for name in ("keel_llm_calls_total", "keel_llm_tokens_total", "keel_llm_cost_dollars_total",
                 "keel_llm_tool_calls_total"):  # fmt: skip
        was, now = before.labelled(name), after.labelled(name)
        assert set(was) <= set(now), name
        assert all(now[key] >= value for key, value in was.items()), name
    assert after.value("keel_llm_calls_total", **TICKETS, state="answered") == 6
    assert after.value("keel_llm_cost_dollars_total", **TICKETS) == pytest.approx(0.0071429)
    assert after.value("keel_llm_tokens_total", **TICKETS, kind="input") == 4_130
    assert after.value("keel_llm_calls_in_flight", **TICKETS) == 0
