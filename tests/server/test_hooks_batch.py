"""Several workflows at one webhook path take a delivery all together or not at all:
one refusing it (its input schema) is a 422 naming it, and no run starts, whichever
was deployed first; all taking it start one run each. A mapping that reads
``event.headers`` never sees a credential header, so none reaches a run's input or
history."""

from __future__ import annotations

import pytest

from keel.authoring.yaml_source import load_yaml_text
from keel.spec.model import WorkflowSpec
from tests.server.conftest import Api
from tests.server.hookflows import SECRET, SECRET_ENV, signed


def hooked_at_shared(name: str, most: int) -> WorkflowSpec:
    """A workflow with a webhook at ``/shared`` whose input schema takes ``amount`` up to
    ``most``."""
    (spec,) = load_yaml_text(f"""
name: {name}
input_schema:
  type: object
  properties:
    amount: {{type: number, maximum: {most}}}
  required: [amount]
nodes:
  - id: a
    task: m:f
triggers:
  - {{kind: webhook, path: /shared, secret_env: {SECRET_ENV}}}
""", f"{name}.yaml")  # fmt: skip
    return spec


def deploy_in_order(api: Api, order: list[str]) -> None:
    specs = {"small": hooked_at_shared("small", 100), "large": hooked_at_shared("large", 1000)}
    for at, name in enumerate(order):
        api.store.deploy([(specs[name], f"{name}.yaml")], 1.0 + at, by="setup")


def runs(api: Api) -> list[str]:
    return sorted(r.workflow for r in api.store.list_runs() if r.workflow in ("small", "large"))


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.mark.parametrize("order", [["small", "large"], ["large", "small"]])
def test_a_delivery_one_workflow_refuses_is_a_422_and_starts_no_run(
    api: Api, secret: None, order: list[str]
) -> None:
    deploy_in_order(api, order)
    content, headers = signed({"amount": 500})  # over small's maximum, under large's
    response = api.client.post("/hooks/shared", content=content, headers=headers)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith(f"delivery {headers['X-Keel-Delivery']} was refused by "
                             "workflow 'small': the input of workflow 'small'")  # fmt: skip
    assert "'large'" not in detail
    assert runs(api) == []
    # the same delivery, sent again, is refused again: nothing was started meanwhile
    again = api.client.post("/hooks/shared", content=content, headers=headers)
    assert again.status_code == 422
    assert runs(api) == []


@pytest.mark.parametrize("order", [["small", "large"], ["large", "small"]])
def test_a_delivery_every_workflow_takes_starts_one_run_each(
    api: Api, secret: None, order: list[str]
) -> None:
    deploy_in_order(api, order)
    content, headers = signed({"amount": 50})
    response = api.client.post("/hooks/shared", content=content, headers=headers)
    assert response.status_code == 201, response.text
    assert sorted(r["workflow"] for r in response.json()["runs"]) == ["large", "small"]
    assert runs(api) == ["large", "small"]
    again = api.client.post("/hooks/shared", content=content, headers=headers)
    assert again.status_code == 200
    assert runs(api) == ["large", "small"]


HEADERS_YAML = f"""
name: echoes_headers
nodes:
  - id: a
    task: m:f
triggers:
  - kind: webhook
    path: /headers
    secret_env: {SECRET_ENV}
    input: {{headers: event.headers, amount: event.body.amount}}
"""

#: credential-like headers a sender (or a proxy) may add, each value holding a mark
CREDENTIALS = {
    "X-Api-Key": "mark-1",
    "Authorization": "Bearer mark-2",
    "Cookie": "session=mark-3",
    "X-Gitlab-Token": "mark-4",
    "Proxy-Authorization": "Basic mark-5",
    "X-Hub-Signature-256": "sha256=mark-6",
}
MARKS = [f"mark-{n}" for n in range(1, 7)]  # fmt: skip


def test_a_mapping_of_the_headers_never_holds_a_credential(api: Api, secret: None) -> None:
    (spec,) = load_yaml_text(HEADERS_YAML, "headers.yaml")
    api.store.deploy([(spec, "headers.yaml")], 1.0, by="setup")
    content, headers = signed({"amount": 5})
    sent = {**headers, **CREDENTIALS, "X-Shop": "main"}
    response = api.client.post("/hooks/headers", content=content, headers=sent)
    assert response.status_code == 201, response.text
    (run,) = api.store.list_runs(workflow="echoes_headers")
    given = {name.lower() for name in run.input["headers"]}
    assert run.input["headers"]["x-shop"] == "main"  # the mapping did read the headers
    assert "x-keel-delivery" in given
    hidden = {name.lower() for name in CREDENTIALS} | {"x-keel-signature"}
    assert given.isdisjoint(hidden)
    stored = "".join(link.payload for link in api.store.chain_links(run.id))
    assert "main" in stored  # the history holds the input as mapped
    digest = headers["X-Keel-Signature"].partition("v1=")[2]
    for mark in [*MARKS, digest]:
        assert mark not in stored
        assert mark not in str(run.input)
