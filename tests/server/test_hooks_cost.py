"""What an unauthenticated webhook request may cost: a path with no webhook is a 404
answered from memory (no store read), a body over the webhooks' limit is a 413 before
it is read, and the paths are read from the deployments at most once per refresh, or at
once after a deploy through this server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from keel.runtime.triggers.live import LiveTriggers
from keel.server import create_app
from keel.store.deployments import Deployment
from keel.store.sqlite import SQLiteStore
from tests.server.conftest import Api
from tests.server.hookflows import SECRET, SECRET_ENV, deploy_hooked, signed
from tests.server.serverflows import seed


class CountedStore(SQLiteStore):
    """A real SQLite store that counts its reads of the deployments."""

    reads = 0

    def deployments(self, workflow: str | None = None) -> list[Deployment]:
        self.reads += 1
        return super().deployments(workflow)


class Frozen:
    """A monotonic clock that moves only when the test says: the cache's refresh never
    comes due by itself during a test, however slow the machine."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def live_of(client: TestClient) -> LiveTriggers:
    live: LiveTriggers = client.app.state.service.plans.live  # type: ignore[attr-defined]
    return live


@pytest.fixture
def frozen(api: Api, monkeypatch: pytest.MonkeyPatch) -> Frozen:
    """The ``hooked`` workflow deployed, its secret set, and the server's index of live
    triggers on a clock the test moves (read once, now)."""
    deploy_hooked(api.store)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    clock = Frozen()
    live = live_of(api.client)
    live.monotonic = clock
    live.read()
    return clock


def hooked_runs(store: SQLiteStore, workflow: str = "hooked") -> list[str]:
    return [r.id for r in store.list_runs(workflow=workflow)]


@pytest.fixture
def counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, CountedStore]]:
    store = CountedStore(tmp_path / "keel.db")
    seed(store)
    deploy_hooked(store)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with TestClient(create_app(store, rate=0)) as client:
        live_of(client).monotonic = Frozen()
        yield client, store
    store.close()


def test_a_path_with_no_webhook_is_a_404_from_memory(
    counted: tuple[TestClient, CountedStore],
) -> None:
    client, store = counted
    content, headers = signed({"amount": 5})
    assert client.post("/hooks/orders", content=content, headers=headers).status_code == 201
    reads = store.reads
    for path in ("/hooks/nowhere", "/hooks/orders/x", "/hooks/", "/hooks/ORDERS"):
        # unsigned, not JSON: the path is the first thing checked, and all that is
        answer = client.post(path, content=b"{not json", headers={"X-Keel-Delivery": "d"})
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        # it names the path sent, and no path that has a webhook
        assert answer.json()["detail"] == f"no deployed workflow has a webhook at {path}"
    assert store.reads == reads  # no read of the deployments for any of them


@pytest.mark.parametrize("streamed", [False, True])
def test_a_delivery_over_the_webhooks_body_limit_is_a_413_and_starts_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch, streamed: bool
) -> None:
    deploy_hooked(api.store)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    with TestClient(create_app(api.store, rate=0, hook_body=1000)) as client:
        content, headers = signed({"amount": 5, "pad": "x" * 1000})  # signed right
        sent = (iter([content[:500], content[500:]]) if streamed else content)  # fmt: skip
        refused = client.post("/hooks/orders", content=sent, headers=headers)
        assert refused.status_code == 413, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "1000 bytes" in refused.json()["detail"]
        assert hooked_runs(api.store) == []
        small, small_headers = signed({"amount": 5})  # under the limit: taken
        assert client.post("/hooks/orders", content=small, headers=small_headers).status_code == 201
        # the rest of the API keeps its own, larger limit
        body = {"workflow": "review", "input": {"amount": 1}, "pad": "x" * 2000}
        started = client.post("/runs", json=body, headers=api.auth("operator"))
        assert started.status_code != 413


def test_the_webhooks_default_body_limit_is_a_megabyte(api: Api) -> None:
    from keel.server.limits import MOST_BODY_BYTES, MOST_HOOK_BYTES

    assert MOST_HOOK_BYTES == 1024 * 1024 < MOST_BODY_BYTES
    deploy_hooked(api.store)
    content, headers = signed({"amount": 5, "pad": "x" * MOST_HOOK_BYTES})
    refused = api.client.post("/hooks/orders", content=content, headers=headers)
    assert refused.status_code == 413
    assert hooked_runs(api.store) == []


SECOND = f"""
name: second
nodes:
  - {{id: a, task: m:f}}
triggers:
  - {{kind: webhook, path: /orders, secret_env: {SECRET_ENV}}}
  - {{kind: webhook, path: /fresh, secret_env: {SECRET_ENV}}}
"""


def test_a_deploy_through_the_server_makes_its_webhooks_live_at_once(
    api: Api, frozen: Frozen
) -> None:
    content, headers = signed({"amount": 5})
    assert api.client.post("/hooks/fresh", content=content, headers=headers).status_code == 404
    deployed = api.client.post("/workflows", json={"definition": SECOND},
                               headers=api.auth("admin"))  # fmt: skip
    assert deployed.status_code == 201, deployed.text
    # no time has passed on the index's clock: the deploy itself refreshed it
    fresh = api.client.post("/hooks/fresh", content=content, headers=headers)
    assert fresh.status_code == 201, fresh.text
    assert [r["workflow"] for r in fresh.json()["runs"]] == ["second"]
    # two workflows at one path, one secret: one delivery starts a run of each
    content, headers = signed({"amount": 7})
    both = api.client.post("/hooks/orders", content=content, headers=headers)
    assert both.status_code == 201, both.text
    assert sorted(r["workflow"] for r in both.json()["runs"]) == ["hooked", "second"]
    assert len(hooked_runs(api.store)) == 1
    assert len(hooked_runs(api.store, "second")) == 2


def test_a_deploy_by_another_process_is_live_within_the_refresh(api: Api, frozen: Frozen) -> None:
    from keel.authoring.yaml_source import load_yaml_text
    from keel.runtime.triggers.live import REFRESH

    (spec,) = load_yaml_text(SECOND, "second.yaml")
    api.store.deploy([(spec, "second.yaml")], 2.0, by="elsewhere")  # not through the server
    content, headers = signed({"amount": 5})
    assert api.client.post("/hooks/fresh", content=content, headers=headers).status_code == 404
    frozen.now += REFRESH
    fresh = api.client.post("/hooks/fresh", content=content, headers=headers)
    assert fresh.status_code == 201, fresh.text
