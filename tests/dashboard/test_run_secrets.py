"""A run that uses a secret shows its reference, never its value: the dashboard and the
API read the spec (templates as written) and what attempts recorded (redacted of the
secrets they looked up), so no page or answer can hold the value.

The run is real: a worker runs an ``http`` step whose header reads
``${{ secrets.API_TOKEN }}`` (the step fails, as there is nothing to call: what matters is
what is recorded of it) and a task that reads the secret with ``keel.secret`` and
returns and logs it, as a careless task might.
"""

from __future__ import annotations

import pytest

import keel
from keel.authoring.yaml_source import load_yaml_text
from keel.runtime.operations.control import start_run
from keel.runtime.worker.loop import Worker, WorkerOptions
from tests.dashboard.conftest import Ui

VALUE = "s3cr3t-Value-4242"
REFERENCE = "${{ secrets.API_TOKEN }}"

SECRETS_YAML = """
name: secretive
nodes:
  - id: leak
    task: tests.dashboard.test_run_secrets:leak
  - id: call
    kind: http
    method: POST
    url: "http://127.0.0.1:9/claims"
    headers: {Authorization: "Bearer ${{ secrets.API_TOKEN }}"}
    body: {token: "${{ secrets.API_TOKEN }}"}
    retry: {max_attempts: 1}
    after: [leak]
    on_failure: continue
"""


@keel.task
def leak() -> str:
    token = keel.secret("API_TOKEN")
    keel.context().logger.info("the token is %s", token)
    return f"token={token}"


@pytest.fixture
def run_id(ui: Ui, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", VALUE)
    (spec,) = load_yaml_text(SECRETS_YAML, "secretive.yaml")
    ui.store.deploy([(spec, "secretive.yaml")], 2.0, by="setup")
    run = start_run(ui.store, spec, {})
    worker = Worker(ui.store, WorkerOptions(concurrency=1))
    try:
        worker.run_until_finished([run.id])
    finally:
        worker.close()
    return run.id


def test_pages_and_answers_show_the_reference_not_the_value(ui: Ui, run_id: str) -> None:
    viewer = ui.clients["viewer"]
    page = viewer.get(f"/ui/runs/{run_id}")
    assert page.status_code == 200, page.text
    seen = {"run page": page.text}
    for path in ("nodes/call", "nodes/leak", "history", "steps", "logs", "logs.txt",
                 "timeline", "elements"):  # fmt: skip
        answer = viewer.get(f"/ui/runs/{run_id}/{path}")
        assert answer.status_code == 200, (path, answer.text)
        seen[path] = answer.text
    auth = {"Authorization": f"Bearer {ui.seeded.tokens['viewer']}"}
    for path in ("", "/history", "/logs", "/story", "/why"):
        answer = viewer.get(f"/runs/{run_id}{path}", headers=auth)
        assert answer.status_code == 200, (path, answer.text)
        seen[f"api{path}"] = answer.text
    definition = viewer.get("/workflows/secretive", headers=auth)
    assert definition.status_code == 200, definition.text
    seen["api workflow"] = definition.text

    assert [where for where, text in seen.items() if VALUE in text] == []
    assert REFERENCE in seen["run page"]
    assert REFERENCE in seen["nodes/call"]  # what the step was given: the template
    assert REFERENCE in seen["api/history"]
    assert "[secret API_TOKEN]" in seen["api/history"]  # the task's output, redacted
    assert "[secret API_TOKEN]" in seen["logs.txt"]
