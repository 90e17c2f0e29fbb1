"""``GET /runs/{id}/why``: why a run has not ended, per node, for any token that may
read runs; the same document ``keel why --json`` prints."""

from __future__ import annotations

from keel.server.problems import MEDIA_TYPE
from tests.server.conftest import Api


def test_why_names_each_nodes_reason_with_its_data(api: Api) -> None:
    response = api.client.get(f"/runs/{api.waiting[:8]}/why", headers=api.auth("viewer"))

    assert response.status_code == 200, response.text
    found = response.json()
    assert (found["run_id"], found["workflow"], found["status"]) == (
        api.waiting, "review", "running")  # fmt: skip
    reasons = {node["node"]: node["reason"] for node in found["nodes"]}
    assert reasons == {
        "check": {"kind": "approval", "title": "Check the amount", "assignees": ["finance"],
                  "role": None, "since": reasons["check"]["since"], "due": None},
        "ping": {"kind": "signal", "name": "ping", "since": reasons["ping"]["since"],
                 "timeout_at": None},
        "book": {"kind": "parents", "parents": ["check"]},
    }  # fmt: skip
    assert reasons["check"]["since"] == api.store.waits(run_id=api.waiting)[0].since


def test_why_of_a_paused_run_says_who_paused_it(api: Api) -> None:
    found = api.client.get(f"/runs/{api.paused}/why", headers=api.auth("viewer")).json()

    assert found["status"] == "paused"
    assert (found["paused"]["kind"], found["paused"]["by"]) == ("paused", "setup")


def test_why_of_an_ended_run_lists_no_node(api: Api) -> None:
    found = api.client.get(f"/runs/{api.failed}/why", headers=api.auth("viewer")).json()

    assert (found["status"], found["nodes"]) == ("failed", [])


def test_why_of_an_unknown_run_is_not_found(api: Api) -> None:
    response = api.client.get("/runs/ffffffff/why", headers=api.auth("viewer"))

    assert response.status_code == 404
    assert response.headers["content-type"] == MEDIA_TYPE


def test_why_says_what_the_run_is_doing_as_the_list_of_runs_does(api: Api) -> None:
    found = api.client.get(f"/runs/{api.waiting}/why", headers=api.auth("viewer")).json()
    listed = api.client.get("/runs", headers=api.auth("viewer")).json()["runs"]

    (same,) = [run for run in listed if run["id"] == api.waiting]
    assert found["activity"] == same["activity"] == "waiting for approval, signal"
