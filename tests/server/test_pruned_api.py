"""The API over a pruned run: its detail with its tombstone checked, an empty history,
its verification by tombstone, and 409 for what needs a history (why, logs, acting)."""

from __future__ import annotations

from keel.audit.retention import make_tombstone
from keel.store.protocol import Store
from tests.server.conftest import Api


def prune_one(store: Store, run_id: str) -> None:
    """Prune the ended run ``run_id`` alone, unsigned (the server has no key here)."""
    (candidate,) = [c for c in store.prune_candidates(1e12, limit=1000) if c.run.id == run_id]
    assert store.prune_runs([make_tombstone(candidate, 2e9, "ops", None)]) == [run_id]


def test_a_pruned_runs_routes_say_what_is_left_of_it(api: Api) -> None:
    prune_one(api.store, api.failed)
    reader = api.auth("viewer")

    detail = api.client.get(f"/runs/{api.failed}", headers=reader)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert (body["status"], body["nodes"], body["input"], body["pruned_at"]) == (
        "failed", [], None, 2e9)  # fmt: skip
    assert body["pruned"]["signature"] == "unsigned"
    assert body["pruned"]["by"] == "ops"
    history = api.client.get(f"/runs/{api.failed}/history", headers=reader).json()
    assert (history["events"], history["next_after"], history["pruned_at"]) == ([], None, 2e9)
    verified = api.client.get(f"/runs/{api.failed}/verify", headers=reader).json()
    assert verified["intact"] is True
    assert verified["pruned"]["counts"]["events"] > 0
    listed = api.client.get("/runs", headers=reader).json()["runs"]
    assert [r["pruned_at"] for r in listed if r["id"] == api.failed] == [2e9]
    failed = api.client.get("/failed", headers=reader).json()["failed"]
    (mine,) = [f for f in failed if f["id"] == api.failed]
    failed_node = api.store.get_run(api.failed).failed_node
    assert failed_node is not None
    assert mine["node"] == failed_node  # from the run's row: its history is gone
    for path in ("why", "logs"):
        refused = api.client.get(f"/runs/{api.failed}/{path}", headers=reader)
        assert refused.status_code == 409, (path, refused.text)
        assert "was pruned" in refused.json()["detail"]
    retried = api.client.post(f"/runs/{api.failed}/retry", headers=api.auth("operator"))
    assert retried.status_code == 409
    assert "was pruned" in retried.json()["detail"]


def test_what_reads_a_pruned_runs_history_is_refused_with_409(api: Api) -> None:
    """A diff, a fork and a story of a pruned run would read its empty history as a run
    not started: each is refused, naming the run, and a client raises it again."""
    from keel.errors import RunPrunedError
    from keel.runtime.transports.problems import error_for

    prune_one(api.store, api.failed)
    reader, operator = api.auth("viewer"), api.auth("operator")
    asked = [
        api.client.get("/diff", params={"a": api.failed, "b": api.failed}, headers=reader),
        api.client.post(f"/runs/{api.failed}/fork", json={"from": "x", "dry_run": True},
                        headers=operator),
        api.client.get(f"/runs/{api.failed}/story", headers=reader),
    ]  # fmt: skip
    for refused in asked:
        assert refused.status_code == 409, refused.text
        body = refused.json()
        assert f"run {api.failed} was pruned" in body["detail"], body
        assert body["pruned"] is True
        error = error_for(409, body, "http://x", "/diff", has_token=True)
        assert isinstance(error, RunPrunedError)
