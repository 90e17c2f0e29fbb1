"""What the API does beyond guarding its routes: idempotent starts, who may decide an
approval, deploying a definition (and refusing a bad one with every problem located),
filters and cursors, history pages, rate limits, and errors as problem+json."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from keel.engine.events import ApprovalDecided, RunStarted
from keel.errors import InputError
from keel.runtime.operations.deployed import start_once
from keel.server import create_app
from keel.server.identities import create_token
from tests.server.conftest import Api


def start(api: Api, role: str = "operator", key: str | None = None, **body: object) -> Any:
    headers = api.auth(role) | ({"Idempotency-Key": key} if key else {})
    return api.client.post("/runs", json={"workflow": "review", **body}, headers=headers)


def test_the_same_idempotency_key_never_starts_two_runs(api: Api) -> None:
    before = len(api.store.list_runs(limit=100))
    first = start(api, key="order-17", input={"amount": 5})
    again = start(api, key="order-17", input={"amount": 5})
    other = start(api, key="order-18", input={"amount": 5})

    assert first.status_code == 201
    assert again.status_code == 200
    assert first.json()["id"] == again.json()["id"] != other.json()["id"]
    assert first.headers["location"] == f"/runs/{first.json()['id']}"
    assert len(api.store.list_runs(limit=100)) == before + 2


def test_a_run_started_over_the_api_records_who_started_it(api: Api) -> None:
    run_id = start(api, input={"amount": 5}).json()["id"]

    assert api.store.get_run(run_id).started_by == "operator-1"
    (first, *_) = api.store.history(run_id)
    assert isinstance(first.event, RunStarted)
    assert first.event.by == "operator-1"
    listed = api.client.get("/runs?started_by=operator-1", headers=api.auth("viewer")).json()
    assert [r["id"] for r in listed["runs"]] == [run_id]


def test_a_bad_input_or_an_unknown_workflow_starts_nothing(api: Api) -> None:
    before = len(api.store.list_runs(limit=100))
    bad = start(api, input={"amount": "lots"})
    unknown = api.client.post("/runs", json={"workflow": "nope"}, headers=api.auth("operator"))
    wrong_version = start(api, version="0000000000")

    assert bad.status_code == 422
    assert "amount" in bad.json()["detail"]
    assert unknown.status_code == 404
    assert "'nope'" in unknown.json()["detail"]
    assert wrong_version.status_code == 404
    assert len(api.store.list_runs(limit=100)) == before


def test_a_run_starts_at_a_version_named_by_a_prefix(api: Api) -> None:
    version = api.store.deployments("review")[-1].version
    response = start(api, version=version[:8], input={})
    assert response.status_code == 201
    assert response.json()["spec_version"] == version


def test_an_approval_is_decided_only_by_its_assignees_or_an_admin(api: Api) -> None:
    outsider = create_token(api.store, "outsider", "approver", groups=("legal",))[0]
    path = f"/runs/{api.waiting}/approvals/check/approve"
    before = api.store.get_run(api.waiting).last_seq

    refused = api.client.post(path, json={}, headers={"Authorization": f"Bearer {outsider}"})
    assert refused.status_code == 403
    assert "assigned to finance" in refused.json()["detail"]
    assert api.store.get_run(api.waiting).last_seq == before  # nothing recorded

    decided = api.client.post(path, json={"comment": "ok"}, headers=api.auth("approver"))
    assert decided.status_code == 200, decided.text
    decisions = [e.event for e in api.store.history(api.waiting)
                 if isinstance(e.event, ApprovalDecided)]  # fmt: skip
    assert [(d.by, d.approved, d.comment) for d in decisions] == [("approver-1", True, "ok")]


def test_my_approvals_are_those_i_may_decide(api: Api) -> None:
    outsider = create_token(api.store, "outsider", "approver", groups=("legal",))[0]

    def mine(headers: dict[str, str]) -> list[str]:
        found = api.client.get("/approvals?mine=true", headers=headers).json()["approvals"]
        return [a["run_id"] for a in found]

    assert api.waiting in mine(api.auth("approver"))
    assert mine({"Authorization": f"Bearer {outsider}"}) == []
    assert mine(api.auth("viewer")) == []
    everything = api.client.get("/approvals", headers=api.auth("viewer")).json()["approvals"]
    assert {a["run_id"] for a in everything} >= {api.waiting}


def test_a_definition_is_deployed_and_becomes_current(api: Api) -> None:
    text = "name: review\nnodes:\n  - {id: only, task: tests.server.serverflows:book}\n"
    response = api.client.post("/workflows", json={"definition": text}, headers=api.auth("admin"))

    assert response.status_code == 201, response.text
    (deployed,) = response.json()["deployed"]
    assert deployed["deployed_by"] == "admin-1"
    assert deployed["source"] == "api"
    history = api.client.get("/workflows/review", headers=api.auth("viewer")).json()
    assert history["current_version"] == deployed["version"]
    assert [d["current"] for d in history["deployments"]] == [False, True]
    listed = api.client.get("/workflows", headers=api.auth("viewer")).json()["workflows"]
    assert [(w["workflow"], w["versions"]) for w in listed] == [("review", 2)]


def test_a_bad_definition_gets_every_problem_located_and_nothing_is_stored(api: Api) -> None:
    text = (
        "name: broken\n"
        "nodes:\n"
        "  - id: a\n"
        "    task: m:f\n"
        "    timeout: forever\n"
        "  - {id: b, task: m:g, after: [zzz]}\n"
    )
    response = api.client.post("/workflows", json={"definition": text}, headers=api.auth("admin"))

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problems = response.json()["errors"]
    assert [(p["line"], p["node"]) for p in problems] == [(5, "a"), (6, "b")]
    assert all(p["column"] for p in problems)
    assert api.store.deployments("broken") == []
    syntax = api.client.post("/workflows", json={"definition": "name: [x\n"},
                             headers=api.auth("admin"))  # fmt: skip
    assert syntax.status_code == 422
    assert syntax.json()["errors"][0]["line"] == 2


def test_runs_are_filtered_and_paged_on_the_server(api: Api) -> None:
    for n in range(5):
        start(api, key=f"k{n}", input={"amount": n})
    seen: list[str] = []
    url = "/runs?workflow=review&status=running&limit=2"
    while url:
        page = api.client.get(url, headers=api.auth("viewer")).json()
        seen += [r["id"] for r in page["runs"]]
        assert all(r["status"] == "running" for r in page["runs"])
        url = (f"/runs?workflow=review&status=running&limit=2&cursor={page['next_cursor']}"
               if page["next_cursor"] else "")  # fmt: skip
    expected = [r.id for r in api.store.list_runs(workflow="review", status="running")]
    assert seen == expected
    assert len(seen) == 6
    future = api.client.get("/runs?created_after=2100-01-01T00:00:00Z",
                            headers=api.auth("viewer")).json()  # fmt: skip
    assert future["runs"] == []
    bad = api.client.get("/runs?cursor=nonsense", headers=api.auth("viewer"))
    assert bad.status_code == 422
    assert "cursor" in bad.json()["detail"]


def test_runs_are_listed_by_when_they_ended(api: Api) -> None:
    def listed(query: str) -> list[str]:
        answer = api.client.get(f"/runs?{query}", headers=api.auth("viewer"))
        assert answer.status_code == 200, answer.text
        return [run["id"] for run in answer.json()["runs"]]

    assert listed("ended_after=2000-01-01T00:00:00Z") == [api.failed]  # the one ended
    assert listed("ended_after=2000-01-01T00:00:00%2B02:00&status=failed") == [api.failed]
    assert listed("ended_after=2100-01-01T00:00:00Z") == []
    assert listed("ended_before=2000-01-01T00:00:00Z") == []
    assert listed("ended_before=2100-01-01T00:00:00Z&workflow=review") == [api.failed]
    for bad in ("0.5", "2025-01-31T12:00:00", "yesterday"):  # RFC 3339 with its offset
        answer = api.client.get(f"/runs?ended_after={bad}", headers=api.auth("viewer"))
        assert answer.status_code == 422, bad
        assert "ended_after" in answer.text


def test_a_history_is_read_in_pages_by_sequence_number(api: Api) -> None:
    last = api.store.get_run(api.failed).last_seq
    first = api.client.get(f"/runs/{api.failed}/history?limit=2", headers=api.auth("viewer"))
    page = first.json()
    assert [e["seq"] for e in page["events"]] == [1, 2]
    assert page["next_after"] == 2
    assert page["events"][0]["kind"] == "run_started"
    rest = api.client.get(f"/runs/{api.failed}/history?after=2", headers=api.auth("viewer"))
    assert [e["seq"] for e in rest.json()["events"]] == list(range(3, last + 1))
    assert rest.json()["next_after"] is None
    verified = api.client.get(f"/runs/{api.failed}/verify", headers=api.auth("viewer")).json()
    assert verified["intact"] is True
    assert verified["events"] == last


def test_a_page_of_history_reads_only_its_events(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """``limit`` bounds the read, not only the answer (a long run's history was read
    to its end for each page)."""
    read: list[int] = []
    history = api.store.history

    def recorded(run_id: str, after_seq: int = 0, before_seq: int | None = None) -> Any:
        found = history(run_id, after_seq, before_seq=before_seq)
        read.extend(event.seq for event in found)
        return found

    monkeypatch.setattr(api.store, "history", recorded)
    page = api.client.get(f"/runs/{api.failed}/history?after=1&limit=2",
                          headers=api.auth("viewer")).json()  # fmt: skip
    assert [e["seq"] for e in page["events"]] == [2, 3]
    assert page["next_after"] == 3
    assert read == [2, 3]


def test_a_token_over_its_rate_gets_429_with_retry_after(api: Api) -> None:
    with TestClient(create_app(api.store, rate=1.0)) as client:  # a burst of 2
        codes = [client.get("/runs", headers=api.auth("viewer")).status_code for _ in range(4)]
        limited = client.get("/runs", headers=api.auth("viewer"))
        other = client.get("/runs", headers=api.auth("operator"))  # its own bucket
    assert codes[:2] == [200, 200]
    assert 429 in codes[2:]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert other.status_code == 200


def test_a_request_that_does_not_fit_names_the_field(api: Api) -> None:
    response = api.client.post("/runs", json={"version": 3}, headers=api.auth("operator"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"body.workflow", "body.version"} <= fields


def test_an_action_the_run_refuses_is_a_conflict_with_the_reason(api: Api) -> None:
    response = api.client.post(f"/runs/{api.failed}/cancel", json={"reason": "x"},
                               headers=api.auth("operator"))  # fmt: skip
    assert response.status_code == 409
    assert "ended" in response.json()["detail"]
    missing = api.client.get("/runs/ffffffffffff", headers=api.auth("viewer"))
    assert missing.status_code == 404


def test_tokens_are_made_and_revoked_by_admins_and_their_secret_shown_once(api: Api) -> None:
    body = {"name": "bot", "role": "operator", "expires_in_days": 1}
    made = api.client.post("/tokens", json=body, headers=api.auth("admin"))
    assert made.status_code == 201
    secret = made.json()["token"]
    assert api.client.get("/runs", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    listed = api.client.get("/tokens", headers=api.auth("admin")).json()["tokens"]
    assert all("token" not in t and secret not in str(t) for t in listed)
    assert api.client.delete("/tokens/bot", headers=api.auth("admin")).status_code == 200
    again = api.client.delete("/tokens/bot", headers=api.auth("admin"))
    assert again.status_code == 404


def test_a_body_over_the_limit_is_refused_before_it_is_read(api: Api) -> None:
    from keel.server.limits import MOST_BODY_BYTES

    huge = {"workflow": "review", "input": {"text": "x" * (MOST_BODY_BYTES + 1)}}
    response = api.client.post("/runs", json=huge, headers=api.auth("operator"))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_setting_an_approval_by_hand_needs_the_right_to_decide_it(api: Api) -> None:
    outsider = create_token(api.store, "outsider", "approver", groups=("legal",))[0]
    path = f"/runs/{api.waiting}/nodes/check/skip"
    before = api.store.get_run(api.waiting).last_seq

    by_operator = api.client.post(path, json={"output": None}, headers=api.auth("operator"))
    by_outsider = api.client.post(path, json={"output": None},
                                  headers={"Authorization": f"Bearer {outsider}"})  # fmt: skip
    assert by_operator.status_code == 403
    assert "may not decide approvals" in by_operator.json()["detail"]
    # an approver passes the route's check (act) only as an admin would: refused there
    assert by_outsider.status_code == 403
    assert api.store.get_run(api.waiting).last_seq == before  # nothing recorded
    by_admin = api.client.post(path, json={"output": None}, headers=api.auth("admin"))
    assert by_admin.status_code == 200, by_admin.text


def test_a_key_used_again_with_other_input_is_refused(api: Api) -> None:
    first = start(api, key="order-9", input={"amount": 1})
    other = start(api, key="order-9", input={"amount": 999})
    assert first.status_code == 201
    assert other.status_code == 422
    assert first.json()["id"] in other.json()["detail"]
    spec = api.store.load_spec(first.json()["spec_version"])
    with pytest.raises(InputError, match="printable ASCII"):  # headers are ASCII
        start_once(api.store, spec, {}, key="ordre-\u00e9")


def test_a_store_fault_is_a_5xx_that_tells_no_file_names(api: Api) -> None:
    from keel.errors import StorageFaultError

    def broken(*_: object, **__: object) -> None:
        raise StorageFaultError("/srv/secret/keel.db: disk I/O error")

    api.store.list_runs = broken  # type: ignore[method-assign]
    response = api.client.get("/runs", headers=api.auth("viewer"))
    assert response.status_code == 500
    assert "secret" not in response.text


def test_a_token_revoked_here_is_refused_at_once(api: Api) -> None:
    assert api.client.get("/runs", headers=api.auth("viewer")).status_code == 200
    assert api.client.delete("/tokens/viewer-1", headers=api.auth("admin")).status_code == 200
    assert api.client.get("/runs", headers=api.auth("viewer")).status_code == 401


def test_an_action_needs_no_body_and_a_bad_body_says_why(api: Api) -> None:
    paused = api.client.post(f"/runs/{api.waiting}/pause", headers=api.auth("operator"))
    assert paused.status_code == 200, paused.text
    as_json = api.auth("operator") | {"content-type": "application/json"}
    not_json = api.client.post(f"/runs/{api.paused}/unpause", content=b"{reason: 1}",
                               headers=as_json)  # fmt: skip
    assert not_json.status_code == 422
    assert "not JSON" in not_json.json()["detail"]
    no_type = api.client.post("/runs", content=b'{"workflow": "review"}',
                              headers=api.auth("operator"))  # fmt: skip
    assert no_type.status_code == 422
    assert "Content-Type: application/json" in no_type.json()["detail"]


def test_schedules_are_listed_paused_triggered_and_backfilled_over_the_api(api: Api) -> None:
    listed = api.client.get("/schedules", headers=api.auth("viewer")).json()["schedules"]
    assert [(s["name"], s["workflow"], s["paused"]) for s in listed] == [
        ("review-daily", "review", False)]  # fmt: skip
    assert len(listed[0]["next"]) == 3
    paused = api.client.post("/schedules/review-daily/pause", headers=api.auth("operator"))
    assert paused.json() == {"name": "review-daily", "paused": True}
    (state,) = api.store.schedules()
    assert (state.paused, state.paused_by) == (True, "operator-1")
    body = {"start": "2026-01-01T00:00:00+01:00", "end": "2026-01-02T23:00:00+01:00"}
    first = api.client.post("/schedules/review-daily/backfill", json=body,
                            headers=api.auth("operator")).json()["slots"]  # fmt: skip
    again = api.client.post("/schedules/review-daily/backfill", json=body,
                            headers=api.auth("operator")).json()["slots"]  # fmt: skip
    assert [s["started"] for s in first] == [True, True]
    assert [s["started"] for s in again] == [False, False]
    assert len(api.store.list_runs(started_by="schedule:review-daily")) == 2
    unknown = api.client.post("/schedules/nope/trigger", headers=api.auth("operator"))
    assert unknown.status_code == 404
    naive = api.client.post("/schedules/review-daily/backfill",
                            json={"start": "2026-01-01T00:00", "end": "2026-01-02T00:00"},
                            headers=api.auth("operator"))  # fmt: skip
    assert naive.status_code == 422
