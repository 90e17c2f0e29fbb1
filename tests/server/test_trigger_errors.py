"""A trigger whose filter or input mapping reads what a delivery or an event does not
have: the caller is told which trigger, which input field, which expression and what
was missing (a 422 problem), never CEL's bare ``KeyError``; nothing starts."""

from __future__ import annotations

import pytest

from keel.authoring.yaml_source import load_yaml_text
from tests.server.conftest import Api
from tests.server.hookflows import SECRET, SECRET_ENV, signed

MAPPED_YAML = f"""
name: mapped
input_schema:
  type: object
  properties:
    name: {{type: string}}
nodes:
  - id: a
    task: m:f
triggers:
  - kind: webhook
    path: /orders
    secret_env: {SECRET_ENV}
    input: {{name: event.body.id}}
  - kind: webhook
    path: /big
    secret_env: {SECRET_ENV}
    filter: "event.body.total > 100"
  - kind: event
    event: order
    input: {{name: event.customer.name}}
"""


@pytest.fixture
def mapped(api: Api, monkeypatch: pytest.MonkeyPatch) -> Api:
    (spec,) = load_yaml_text(MAPPED_YAML, "mapped.yaml")
    api.store.deploy([(spec, "mapped.yaml")], 1.0, by="setup")
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return api


def refused(api: Api, response_status: int, detail: str) -> None:
    assert response_status == 422
    assert "KeyError" not in detail
    assert api.store.list_runs(workflow="mapped") == []


@pytest.mark.parametrize(
    ("body", "missing"),
    [({"other": 1}, "event.body has no field 'id'"),
     (None, "event.body is null, not an object: no field 'id'"),
     ([1, 2], "event.body is a list, not an object: no field 'id'")],
)  # fmt: skip
def test_a_webhook_mapping_that_reads_a_missing_field_is_a_422_naming_it(
    mapped: Api, body: object, missing: str
) -> None:
    content, headers = signed(body)
    response = mapped.client.post("/hooks/orders", content=content, headers=headers)
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert detail == (
        f"delivery {headers['X-Keel-Delivery']} was refused by workflow 'mapped': "
        f"webhook /hooks/orders: input 'name' = event.body.id: {missing}"
    )
    refused(mapped, response.status_code, detail)


def test_a_webhook_filter_that_reads_a_missing_field_is_a_422_naming_it(mapped: Api) -> None:
    content, headers = signed({"amount": 3})
    response = mapped.client.post("/hooks/big", content=content, headers=headers)
    detail = response.json()["detail"]
    assert detail == (
        f"delivery {headers['X-Keel-Delivery']} was refused by workflow 'mapped': "
        "webhook /hooks/big: filter event.body.total > 100: event.body has no field 'total'"
    )
    refused(mapped, response.status_code, detail)


def test_an_event_mapping_that_reads_a_missing_field_tells_the_sender(mapped: Api) -> None:
    response = mapped.client.post("/events/order", json={"data": {"customer": {}}, "id": "m-1"},
                                  headers=mapped.auth("operator"))  # fmt: skip
    detail = response.json()["detail"]
    assert detail == (
        "event 'order' (message m-1) was refused by workflow 'mapped': event 'order': "
        "input 'name' = event.customer.name: event.customer has no field 'name'"
    )
    refused(mapped, response.status_code, detail)
    taken = mapped.client.post("/events/order", json={"data": {"customer": {"name": "ada"}}},
                               headers=mapped.auth("operator"))  # fmt: skip
    assert taken.status_code == 201, taken.text
