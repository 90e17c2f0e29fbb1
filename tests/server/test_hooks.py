"""Webhooks take signed deliveries only, and each delivery id starts one run; events
start the runs of the workflows whose triggers take them, once per message id."""

from __future__ import annotations

import time

import pytest

from tests.server.conftest import Api
from tests.server.hookflows import SECRET, SECRET_ENV, deploy_hooked, signed


@pytest.fixture
def hooked(api: Api, monkeypatch: pytest.MonkeyPatch) -> Api:
    deploy_hooked(api.store)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return api


def runs(api: Api) -> list[str]:
    return [r.id for r in api.store.list_runs(workflow="hooked")]


def test_a_signed_delivery_starts_one_run_and_its_repeat_finds_it(hooked: Api) -> None:
    content, headers = signed({"amount": 5})
    first = hooked.client.post("/hooks/orders", content=content, headers=headers)
    assert first.status_code == 201, first.text
    (run,) = first.json()["runs"]
    assert run["started"]
    assert run["workflow"] == "hooked"
    record = hooked.store.get_run(run["id"])
    assert (record.input, record.started_by) == ({"amount": 5}, "webhook:/orders")

    again = hooked.client.post("/hooks/orders", content=content, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json()["runs"] == [{**run, "started": False}]
    assert runs(hooked) == [run["id"]]


def test_a_put_webhook_takes_put_only(hooked: Api) -> None:
    content, headers = signed({"amount": 6})
    assert (
        hooked.client.put("/hooks/orders/put", content=content, headers=headers).status_code == 201
    )
    refused = hooked.client.post("/hooks/orders/put", content=content, headers=headers)
    assert refused.status_code == 405
    assert "PUT" in refused.json()["detail"]
    assert len(runs(hooked)) == 1


@pytest.mark.parametrize("case", ["wrong secret", "old", "future", "no signature", "garbled",
                                  "other delivery id", "other body"])  # fmt: skip
def test_a_delivery_not_signed_right_is_refused_and_starts_nothing(hooked: Api, case: str) -> None:
    content, headers = signed({"amount": 5}, secret="wrong" if case == "wrong secret" else SECRET,
                              at={"old": time.time() - 330,
                                  "future": time.time() + 330}.get(case))  # fmt: skip
    if case == "no signature":
        del headers["X-Keel-Signature"]
    if case == "garbled":
        headers["X-Keel-Signature"] = "v1=abc"
    if case == "other delivery id":  # a captured delivery replayed under a fresh id
        headers["X-Keel-Delivery"] = "fresh"
    if case == "other body":
        content = content.replace(b"5", b"6")
    response = hooked.client.post("/hooks/orders", content=content, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert runs(hooked) == []


def test_a_delivery_needs_an_id(hooked: Api) -> None:
    content, headers = signed({"amount": 5}, delivery="")
    del headers["X-Keel-Delivery"]
    response = hooked.client.post("/hooks/orders", content=content, headers=headers)
    assert response.status_code == 400
    assert "X-Keel-Delivery" in response.json()["detail"]
    assert runs(hooked) == []


def test_a_body_the_workflow_refuses_is_a_422_and_starts_nothing(hooked: Api) -> None:
    for body in ({"amount": "five"}, {"other": 1}):
        content, headers = signed(body)
        response = hooked.client.post("/hooks/orders", content=content, headers=headers)
        assert response.status_code == 422, response.text
    content, headers = signed({"amount": 5})
    bad_json = hooked.client.post("/hooks/orders", content=b"{nope", headers=headers)
    assert bad_json.status_code == 401  # the signature is over the body: checked first
    assert runs(hooked) == []


def test_a_missing_secret_refuses(hooked: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    content, headers = signed({"amount": 5})
    monkeypatch.delenv(SECRET_ENV)
    unset = hooked.client.post("/hooks/orders", content=content, headers=headers)
    assert unset.status_code == 403
    assert SECRET_ENV not in unset.text
    assert hooked.client.post("/hooks/nowhere", content=content, headers=headers).status_code == 404
    assert runs(hooked) == []


def test_a_filter_and_a_mapping_read_the_body_and_headers(hooked: Api) -> None:
    content, headers = signed({"total": 50})
    small = hooked.client.post("/hooks/big", content=content, headers={**headers, "X-Shop": "main"})
    assert (small.status_code, small.json()["runs"]) == (200, [])
    content, headers = signed({"total": 500})
    other = hooked.client.post("/hooks/big", content=content, headers={**headers, "X-Shop": "b"})
    assert other.json()["runs"] == []
    taken = hooked.client.post("/hooks/big", content=content, headers={**headers, "X-Shop": "main"})
    assert taken.status_code == 201, taken.text
    assert hooked.store.get_run(taken.json()["runs"][0]["id"]).input == {"amount": 500}


def test_an_event_starts_one_run_per_message_id(hooked: Api) -> None:
    auth = hooked.auth("operator")
    first = hooked.client.post("/events/order", json={"data": {"amount": 3}, "id": "m-1"},
                               headers=auth)  # fmt: skip
    assert first.status_code == 201, first.text
    again = hooked.client.post("/events/order", json={"data": {"amount": 3}, "id": "m-1"},
                               headers=auth)  # fmt: skip
    assert again.status_code == 200
    assert again.json()["runs"][0]["id"] == first.json()["runs"][0]["id"]
    record = hooked.store.get_run(first.json()["runs"][0]["id"])
    assert (record.input, record.started_by) == ({"amount": 3}, "event:order")
    random_ids = [hooked.client.post("/events/order", json={"data": {"amount": 4}},
                                     headers=auth).json()["id"] for _ in range(2)]  # fmt: skip
    assert random_ids[0] != random_ids[1]
    filtered = hooked.client.post("/events/order", json={"data": {"amount": 0}}, headers=auth)
    assert (filtered.status_code, filtered.json()["runs"]) == (200, [])
    nobody = hooked.client.post("/events/unknown", json={"data": {"amount": 1}}, headers=auth)
    assert nobody.json()["runs"] == []
    refused = hooked.client.post("/events/order", json={"data": {"amount": 1, "x": 2}},
                                 headers=auth)  # fmt: skip
    assert refused.status_code == 422, refused.text
    assert len(runs(hooked)) == 3


def test_a_delivery_id_with_a_dot_is_refused_and_credentials_stay_out_of_the_event(
    hooked: Api,
) -> None:
    from keel.runtime.triggers.webhooks import _CREDENTIAL

    content, headers = signed({"amount": 5}, delivery="d1.1")
    refused = hooked.client.post("/hooks/orders", content=content, headers=headers)
    assert refused.status_code == 400
    assert runs(hooked) == []
    assert all(_CREDENTIAL.search(name) for name in
               ("x-api-key", "x-hub-signature-256", "x-gitlab-token", "x-session"))  # fmt: skip


def test_webhook_senders_are_rate_limited_by_address(hooked: Api) -> None:
    from fastapi.testclient import TestClient

    from keel.server import create_app

    with TestClient(create_app(hooked.store, rate=1.0)) as client:  # a burst of 2
        codes = []
        for _ in range(4):
            content, headers = signed({"amount": 5})
            codes.append(client.post("/hooks/orders", content=content, headers=headers).status_code)
    assert codes[:2] == [201, 201]
    assert 429 in codes[2:]
