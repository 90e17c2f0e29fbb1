"""``POST /runs/{id}/fork``: the caller's identity is who forked (in both histories)
and who started the new run; a dry run records nothing; bad requests are 4xx naming
what was wrong."""

from __future__ import annotations

from typing import Any

from keel.engine.events import NodeReused, RunForked, RunStarted
from tests.server.conftest import Api


def fork(api: Api, run_id: str, body: dict[str, object], role: str = "operator") -> Any:
    return api.client.post(f"/runs/{run_id}/fork", json=body, headers=api.auth(role))


def test_a_fork_through_the_api_records_the_token_as_who_forked(api: Api) -> None:
    response = fork(api, api.failed, {"from": "book", "set": {"input.amount": 5}})
    assert response.status_code == 201, response.text
    doc = response.json()
    new = doc["run"]["id"]
    assert response.headers["location"] == f"/runs/{new}"
    assert (doc["run_id"], doc["source"]) == (new, api.failed)
    assert {n["node"]: n["action"] for n in doc["nodes"]} == {
        "check": "run", "ping": "run", "book": "run"}  # fmt: skip
    assert doc["input_changes"] == {"input.amount": {"before": 20, "after": 5}}

    first = api.store.history(new)[0].event
    assert isinstance(first, RunStarted)
    assert (first.by, first.input, first.fork) == (
        "operator-1", {"amount": 5},
        {"run": api.failed, "node": "book", "version": first.spec_version},
    )  # fmt: skip
    assert not [s for s in api.store.history(new) if isinstance(s.event, NodeReused)]
    mark = api.store.history(api.failed)[-1].event
    assert mark == RunForked(run_id=new, node="book", by="operator-1", version=first.spec_version)
    assert api.store.get_run(new).started_by == "operator-1"


def test_a_dry_run_says_what_a_fork_would_do_and_records_nothing(api: Api) -> None:
    before = api.store.get_run(api.failed).last_seq
    runs = len(api.store.list_runs(limit=100))
    response = fork(api, api.failed, {"from": "book", "dry_run": True})
    assert response.status_code == 200
    assert response.json()["run"] is None
    assert api.store.get_run(api.failed).last_seq == before
    assert len(api.store.list_runs(limit=100)) == runs


def test_bad_forks_are_refused_naming_what_was_wrong(api: Api) -> None:
    unknown = fork(api, api.failed, {"from": "nope"})
    assert unknown.status_code == 422
    assert "has no node 'nope' (nodes: check, ping, book)" in unknown.json()["detail"]
    bad_input = fork(api, api.failed, {"from": "book", "set": {"input.amount": "lots"}})
    assert bad_input.status_code == 422
    assert "input.amount" in bad_input.json()["detail"]
    bad_key = fork(api, api.failed, {"from": "book", "set": {"amount": 1}})
    assert bad_key.status_code == 422
    assert "cannot set 'amount'" in bad_key.json()["detail"]
    running = fork(api, api.waiting, {"from": "book"})
    assert running.status_code == 409
    assert "only a run that has ended can be forked" in running.json()["detail"]
    missing = api.client.post(f"/runs/{api.failed}/fork", json={}, headers=api.auth("operator"))
    assert missing.status_code == 422


def test_a_fork_through_the_api_is_counted_as_a_run_started(api: Api) -> None:
    from tests.server.test_metrics import scrape

    def started() -> float:
        value = scrape(api.client, api.tokens["viewer"]).value(
            "keel_runs_started_total", workflow="review")  # fmt: skip
        return value or 0.0

    before = started()
    assert fork(api, api.failed, {"from": "book"}).status_code == 201
    assert started() == before + 1
