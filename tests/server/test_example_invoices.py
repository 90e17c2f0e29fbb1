"""examples/invoices.py as its docstring says to use it: deployed, its schedule is live
and named, and a signed delivery to its webhook starts one check with the mapped input."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from keel.authoring.loading import load_all
from keel.runtime.runs import RunCache
from keel.runtime.triggers.firing import active
from tests.server.conftest import Api
from tests.server.hookflows import signed

EXAMPLE = Path(__file__).parents[2] / "examples" / "invoices.py"


def test_the_invoices_example_fires_from_its_webhook(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVOICES_SECRET", "s3cret")
    specs = [loaded.spec for loaded in load_all(str(EXAMPLE))]
    api.store.deploy([(spec, "invoices.py") for spec in specs], time.time())
    live = active(api.store, RunCache(api.store, capacity=0))
    assert {(a.spec.name, a.trigger.kind) for a in live} >= {
        ("collect_invoices", "schedule"), ("check_invoice", "webhook")}  # fmt: skip

    body, headers = signed({"id": "INV-7", "amount": 1200}, delivery="d-1", secret="s3cret")
    first = api.client.post("/hooks/invoices", content=body, headers=headers)
    again = api.client.post("/hooks/invoices", content=body, headers=headers)

    assert first.status_code == 201, first.text
    assert again.status_code == 200
    (run,) = api.store.list_runs(workflow="check_invoice")
    assert run.input == {"invoice_id": "INV-7", "amount": 1200.0}
    assert run.started_by == "webhook:/invoices"


def test_a_schedule_name_another_workflow_has_is_refused_at_deploy(api: Api) -> None:
    specs = [loaded.spec for loaded in load_all(str(EXAMPLE))]
    api.store.deploy([(spec, "invoices.py") for spec in specs], time.time())
    text = ("name: other\nnodes:\n  - {id: a, task: m:f}\ntriggers:\n"
            "  - {kind: schedule, name: morning-invoices, cron: '0 7 * * *'}\n")  # fmt: skip
    response = api.client.post("/workflows", json={"definition": text}, headers=api.auth("admin"))
    assert response.status_code == 422
    assert "morning-invoices" in response.json()["detail"]
    assert api.store.deployments("other") == []


def deploy_yaml(api: Api, text: str) -> Any:
    return api.client.post("/workflows", json={"definition": text}, headers=api.auth("admin"))


def test_a_folder_whose_files_are_moved_is_watched_by_one_trigger(api: Api) -> None:
    mover = ("name: mover\nnodes:\n  - {id: a, task: m:f}\ntriggers:\n"
             "  - {kind: file, folder: /in, move_to: /done}\n")  # fmt: skip
    other = ("name: other\nnodes:\n  - {id: a, task: m:f}\ntriggers:\n"
             "  - {kind: file, folder: /in}\n")  # fmt: skip
    assert deploy_yaml(api, mover).status_code == 201
    refused = deploy_yaml(api, other)
    assert refused.status_code == 422
    assert "moves its files away" in refused.json()["detail"]
    assert api.store.deployments("other") == []


def test_completion_triggers_that_loop_are_refused(api: Api) -> None:
    first = ("name: ping\nnodes:\n  - {id: a, task: m:f}\ntriggers:\n"
             "  - {kind: completion, after: pong}\n")  # fmt: skip
    second = ("name: pong\nnodes:\n  - {id: a, task: m:f}\ntriggers:\n"
              "  - {kind: completion, after: ping}\n")  # fmt: skip
    assert deploy_yaml(api, first).status_code == 201
    refused = deploy_yaml(api, second)
    assert refused.status_code == 422
    assert "loop" in refused.json()["detail"]
