"""The LLM ledger over the API: ``GET /runs/{id}/llm`` (the run's calls and its spend
per node and in total), ``GET /llm/spend`` (per workflow and model since a time) and the
ledger in ``GET /runs/{id}``; each needs a token that may read. Money comes as integer
nano-dollars and as an exact decimal string of dollars, never a float."""

from __future__ import annotations

import pytest

from tests.llm.ledgerflows import CHEAP, MODEL, T0, Seeded, seed
from tests.server.conftest import Api


@pytest.fixture
def runs(api: Api) -> Seeded:
    return seed(api.store)


def test_a_runs_calls_need_a_token_that_may_read(api: Api, runs: Seeded) -> None:
    anonymous = api.client.get(f"/runs/{runs.run}/llm")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert api.client.get("/llm/spend").status_code == 401
    bad = {"Authorization": "Bearer keel_not-a-token"}
    assert api.client.get(f"/runs/{runs.run}/llm", headers=bad).status_code == 401
    for role in ("viewer", "operator", "admin"):
        assert api.client.get(f"/runs/{runs.run}/llm", headers=api.auth(role)).status_code == 200


def test_a_runs_calls_and_its_ledger(api: Api, runs: Seeded) -> None:
    found = api.client.get(f"/runs/{runs.run[:8]}/llm", headers=api.auth("viewer")).json()

    assert (found["run_id"], found["workflow"]) == (runs.run, "tickets")
    assert [(c["node"], c["item"], c["seq"], c["attempt"], c["state"]) for c in found["calls"]] == [
        ("classify", None, 0, 1, "answered"),
        ("draft", 0, 0, 1, "answered"), ("draft", 0, 1, 2, "answered"),
        ("draft", 1, 0, 1, "answered"), ("draft", 1, 1, 2, "failed"), ("draft", 1, 2, 3, "sent"),
        ("draft", 2, 0, 1, "answered"), ("draft", 2, 1, 2, "possibly_billed"),
    ]  # fmt: skip
    first = found["calls"][0]
    assert first["model"] == MODEL
    assert first["finish_reason"] == "stop"
    assert (first["input_tokens"], first["output_tokens"], first["cached_input_tokens"]) == (
        120, 30, 100)  # fmt: skip
    assert (first["cost_nanos"], first["cost"]) == (42_000, "0.000042000")
    assert first["latency"] == 0.25
    assert first["price_source"] == "genai-prices 0.0.1"
    assert "request" not in first
    assert "response" not in first
    failed = found["calls"][4]
    assert failed["error"] == {"type": "RateLimited", "message": "429 Too Many Requests"}
    ledger = found["ledger"]
    assert [n["node"] for n in ledger["nodes"]] == ["classify", "draft"]
    assert (ledger["total"]["cost_nanos"], ledger["total"]["cost"]) == (9_642_000, "0.009642000")
    assert (ledger["total"]["possibly_billed"], ledger["total"]["in_flight"]) == (1, 1)


def test_one_nodes_calls_whole_and_a_node_the_run_does_not_have(api: Api, runs: Seeded) -> None:
    viewer = api.auth("viewer")
    found = api.client.get(f"/runs/{runs.run}/llm?node=draft&full=true", headers=viewer).json()
    assert {c["node"] for c in found["calls"]} == {"draft"}
    assert len(found["calls"]) == 7
    assert found["calls"][0]["request"] == {"messages": [{"role": "user", "content": "ask d0"}]}
    assert found["calls"][0]["response"] == {"text": "answer d0"}
    assert found["calls"][0]["fingerprint"] == "fp-d0"
    assert len(found["ledger"]["nodes"]) == 2  # the run's whole ledger still

    quiet = api.client.get(f"/runs/{runs.run}/llm?node=route", headers=viewer).json()
    assert quiet["calls"] == []
    missing = api.client.get(f"/runs/{runs.run}/llm?node=nope", headers=viewer)
    assert missing.status_code == 404
    assert "has no node 'nope'" in missing.json()["detail"]
    assert api.client.get("/runs/no-such-run/llm", headers=viewer).status_code == 404
    empty = api.client.get(f"/runs/{runs.empty}/llm", headers=viewer).json()
    assert empty["calls"] == []
    assert empty["ledger"] is None


def test_a_runs_detail_carries_its_ledger(api: Api, runs: Seeded) -> None:
    viewer = api.auth("viewer")
    detail = api.client.get(f"/runs/{runs.run}", headers=viewer).json()
    assert detail["llm"]["total"]["calls"] == 8
    assert api.client.get(f"/runs/{runs.empty}", headers=viewer).json()["llm"] is None
    assert api.client.get(f"/runs/{api.waiting}", headers=viewer).json()["llm"] is None


def test_spend_per_workflow_and_model_since_a_time(api: Api, runs: Seeded) -> None:
    viewer = api.auth("viewer")
    every = api.client.get("/llm/spend", headers=viewer).json()
    assert every["since"] == 0.0
    assert [(r["workflow"], r["model"], r["calls"]) for r in every["spend"]] == [
        ("agents", "lookup", 1), ("agents", CHEAP, 1), ("tickets", MODEL, 8)]  # fmt: skip
    tickets = every["spend"][2]
    assert (tickets["cost_nanos"], tickets["cost"]) == (9_642_000, "0.009642000")
    assert (tickets["possibly_billed"], tickets["estimated"]) == (1, 1)
    assert every["total"]["cost_nanos"] == 9_642_700

    one = api.client.get("/llm/spend?workflow=agents&since=2023-11-14T00:00:00Z",
                         headers=viewer).json()  # fmt: skip
    assert one["workflow"] == "agents"
    assert one["since"] < T0
    assert one["total"]["calls"] == 2
    later = api.client.get("/llm/spend?since=2099-01-01T00:00:00Z", headers=viewer).json()
    assert later["spend"] == []
    assert later["total"]["calls"] == 0
    bad = api.client.get("/llm/spend?since=yesterday", headers=viewer)
    assert bad.status_code in (400, 422)
    assert bad.headers["content-type"] == "application/problem+json"
