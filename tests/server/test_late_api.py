"""Late runs over the API: ``GET /runs?late=true`` lists them (``false``: the others),
every run document has the ``late`` flag, and a run's detail its expected duration and
how long it has been going. The runs are made late with a fake clock and a real worker
(``tests.unit.late_runs``) in the store the API serves."""

from __future__ import annotations

from typing import Any

from tests.server.conftest import Api
from tests.unit.late_runs import EXPECTED, TOOK, make_late_runs


def listed(api: Api, query: str) -> dict[str, dict[str, Any]]:
    answer = api.client.get(f"/runs?workflow=slow{query}", headers=api.auth("viewer"))
    assert answer.status_code == 200, answer.text
    return {doc["id"]: doc for doc in answer.json()["runs"]}


def test_runs_can_be_listed_by_whether_they_are_late(api: Api) -> None:
    runs = make_late_runs(api.store)

    every = listed(api, "")
    assert {run_id: doc["late"] for run_id, doc in every.items()} == {
        runs.on_time: False, runs.running: True, runs.finished: True,
    }  # fmt: skip
    assert set(listed(api, "&late=true")) == {runs.running, runs.finished}
    assert set(listed(api, "&late=false")) == {runs.on_time}
    refused = api.client.get("/runs?late=sometimes", headers=api.auth("viewer"))
    assert refused.status_code == 422
    assert "late" in refused.text


def test_a_runs_detail_says_whether_it_is_late_and_against_what(api: Api) -> None:
    runs = make_late_runs(api.store)

    finished = api.client.get(f"/runs/{runs.finished}", headers=api.auth("viewer")).json()
    assert (finished["late"], finished["expected_duration"]) == (True, EXPECTED)
    assert finished["elapsed"] == TOOK
    on_time = api.client.get(f"/runs/{runs.on_time}", headers=api.auth("viewer")).json()
    assert (on_time["late"], on_time["mismatches"]) == (False, [])
    seeded = api.client.get(f"/runs/{api.waiting}", headers=api.auth("viewer")).json()
    assert (seeded["late"], seeded["expected_duration"]) == (False, None)
