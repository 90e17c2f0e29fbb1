"""The API's signed checkpoints and signed approvals: a server signs with its own key
(``create_app(signing_key=...)``, which ``keel serve`` reads from ``[audit]``), and
without one refuses to sign a checkpoint, saying how to give it one, while approvals
are still decided, unsigned."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from keel.audit.checkpoints import check_checkpoint
from keel.audit.signing import SigningKey
from keel.engine.events import ApprovalDecided
from keel.server import create_app
from keel.server.problems import MEDIA_TYPE
from keel.store.sqlite import SQLiteStore
from tests.server.conftest import Api
from tests.server.serverflows import seed


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def signing_api(tmp_path: Path, key: SigningKey) -> Iterator[Api]:
    store = SQLiteStore(tmp_path / "keel.db")
    seeded = seed(store)
    with TestClient(create_app(store, rate=0, signing_key=key)) as client:
        yield Api(client, store, seeded.tokens, seeded.waiting, seeded.failed, seeded.paused)
    store.close()


def decision(api: Api, run_id: str) -> ApprovalDecided:
    (found,) = [s.event for s in api.store.history(run_id) if isinstance(s.event, ApprovalDecided)]
    return found


def test_a_server_without_a_key_refuses_to_sign_saying_how(api: Api) -> None:
    response = api.client.post("/audit/checkpoints", json={}, headers=api.auth("operator"))

    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == MEDIA_TYPE
    assert "no audit signing key" in response.json()["detail"]
    assert "keel audit keygen" in response.json()["detail"]
    assert api.store.checkpoints() == []
    decided = api.client.post(f"/runs/{api.waiting}/approvals/check/approve", json={},
                              headers=api.auth("approver"))  # fmt: skip
    assert decided.status_code == 200
    assert decision(api, api.waiting).signature is None


def test_a_server_signs_checkpoints_and_approvals_with_its_key(
    signing_api: Api, key: SigningKey
) -> None:
    api = signing_api
    decided = api.client.post(f"/runs/{api.waiting}/approvals/check/approve",
                              json={"comment": "ok"}, headers=api.auth("approver"))  # fmt: skip
    assert decided.status_code == 200, decided.text
    signature = decision(api, api.waiting).signature
    assert signature is not None
    assert signature["key_id"] == key.key_id

    made = api.client.post("/audit/checkpoints", json={"workflow": "review"},
                           headers=api.auth("operator"))  # fmt: skip
    assert made.status_code == 201, made.text
    summary = made.json()
    assert (summary["by"], summary["workflow"], summary["key_id"]) == (
        "operator-1",
        "review",
        key.key_id,
    )
    assert summary["runs"] == 3
    listed = api.client.get("/audit/checkpoints", headers=api.auth("viewer")).json()
    assert listed["checkpoints"] == [summary]
    whole = api.client.get(f"/audit/checkpoints/{summary['id']}", headers=api.auth("viewer"))
    assert whole.status_code == 200
    document = whole.json()
    assert set(document["heads"]) == {api.waiting, api.failed, api.paused}
    assert document["heads"][api.waiting]["seq"] == api.store.get_run(api.waiting).last_seq
    assert document["signature"]["key_id"] == key.key_id
    stored = api.store.checkpoint(summary["id"])
    assert stored is not None
    found = check_checkpoint(api.store, stored, {key.key_id: key.public_key})
    assert found.ok
    assert found.approvals.signed == 1
    assert [k.key_id for k in api.store.audit_keys()] == [key.key_id]


def test_a_missing_checkpoint_is_not_found(signing_api: Api) -> None:
    response = signing_api.client.get("/audit/checkpoints/7", headers=signing_api.auth("viewer"))
    assert response.status_code == 404
    assert response.json()["detail"] == "there is no checkpoint 7"


def test_a_checkpoint_of_a_workflow_without_runs_is_refused(signing_api: Api) -> None:
    response = signing_api.client.post("/audit/checkpoints", json={"workflow": "nothing"},
                                       headers=signing_api.auth("admin"))  # fmt: skip
    assert response.status_code == 422
    assert "workflow 'nothing' has no runs" in response.json()["detail"]
    assert signing_api.store.checkpoints() == []
