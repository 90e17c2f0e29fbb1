"""``GET /runs/{id}/story``: a run's history in words, as ``keel replay RUN --json``."""

from __future__ import annotations

from keel.server.problems import MEDIA_TYPE
from tests.server.conftest import Api


def test_the_story_of_a_rejected_run_says_who_rejected_it(api: Api) -> None:
    response = api.client.get(f"/runs/{api.failed[:8]}/story", headers=api.auth("viewer"))

    assert response.status_code == 200, response.text
    story = response.json()
    assert (story["run_id"], story["workflow"], story["status"]) == (api.failed, "review",
                                                                     "failed")  # fmt: skip
    assert story["matches"] is True
    entries = story["entries"]
    assert [e["seq"] for e in entries] == [e.seq for e in api.store.history(api.failed)]
    rejected = next(e for e in entries if e["kind"] == "approval_decided")
    assert (rejected["what"], rejected["by"], rejected["decided"]) == ("rejected", "setup", False)
    waited = next(e for e in entries if e["kind"] == "node_awaiting")
    assert waited["what"] == "waits for approval: Check the amount"
    assert (waited["by"], waited["decided"]) == ("keel", True)
    assert entries[-1]["kind"] == "run_failed"


def test_the_story_of_a_run_still_going_ends_at_its_last_event(api: Api) -> None:
    story = api.client.get(f"/runs/{api.waiting}/story", headers=api.auth("viewer")).json()

    assert story["status"] == "running"
    assert story["replayed"]["status"] == "running"
    assert story["events"] == api.store.get_run(api.waiting).last_seq


def test_the_story_of_an_unknown_run_is_not_found(api: Api) -> None:
    response = api.client.get("/runs/ffffffff/story", headers=api.auth("viewer"))

    assert response.status_code == 404
    assert response.headers["content-type"] == MEDIA_TYPE
