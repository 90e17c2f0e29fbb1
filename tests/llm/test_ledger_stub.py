"""The ledger's surfaces on calls keel's model steps really made: a workflow with a
structured step (re-asked once after a malformed answer) and a map of three text steps
runs against keel's stub server (real HTTP on the loopback) under a real worker; then
``keel show`` and ``keel calls`` account for every request the stub received, at the
cost the ledger recorded, and the metrics' sums kept by the writes are the calls
summed."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from keel.authoring.loading import load_workflow
from keel.cli.app import app
from keel.llm import steps
from keel.llm.config import load_llm_config
from keel.llm.stub_server import Json, Malformed, Reply, StubServer, Text
from keel.runtime.operations.control import start_run
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.store.sqlite import SQLiteStore

FLOW = """
name: topics
nodes:
  - id: extract
    kind: llm
    provider: stub
    model: stub-small
    prompt: "List the topics of: ${{ input.text }}"
    max_tokens: 60
    output:
      type: object
      properties: {topics: {type: array, items: {type: string}}}
      required: [topics]
  - id: per_topic
    kind: llm
    provider: stub
    model: stub-small
    for_each: nodes.extract.output.topics
    max_items: 5
    prompt: "Write one paragraph about ${{ item }}"
    max_tokens: 40
"""
CONFIG = """
[llm.providers.stub]
base_url = "{url}"
timeout = 30

[llm.prices."stub-small"]
input = 2
output = 8
"""


class Answers:
    """The first structured answer malformed (the step re-asks), then three topics;
    every text a few words."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.structured = 0

    def __call__(self, request: dict[str, Any]) -> Reply:
        with self.lock:
            if request.get("response_format"):
                self.structured += 1
                if self.structured == 1:
                    return Malformed()
                return Json({"topics": ["fire", "invoice", "printer"]})
            return Text("a short paragraph")


@pytest.fixture
def stub() -> Any:
    with StubServer(Answers()) as server:
        yield server


def test_show_and_calls_account_for_every_request_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub: StubServer
) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    (tmp_path / "keel.toml").write_text(CONFIG.format(url=stub.url))
    config = load_llm_config(tmp_path, environ={})
    monkeypatch.setattr(steps, "_config", lambda: config)
    spec = load_workflow(str(tmp_path / "flow.yaml")).spec
    db = tmp_path / "keel.db"
    store = SQLiteStore(db)
    try:
        run_id = start_run(store, spec, {"text": "the printer caught fire"}).id
        worker = Worker(store, WorkerOptions(concurrency=2))
        try:
            (finished,) = worker.run_until_finished([run_id])
        finally:
            worker.close()
        assert finished.status == "succeeded"
        spend = store.run_spend(run_id)
        kept = {k: v for k, v in store.gauges(0, 0).llm_calls.items() if v.calls}
    finally:
        store.close()
    assert len(stub.requests) == 5  # a malformed answer, its re-ask, three items
    assert kept[("topics", "model", "stub-small", "answered")].calls == 5
    assert kept[("topics", "model", "stub-small", "answered")].cost == sum(
        s.cost for s in spend.values())  # fmt: skip

    env = {"COLUMNS": "80", "KEEL_SERVER_URL": None, "KEEL_DATABASE_URL": f"sqlite:///{db}"}
    shown = CliRunner().invoke(app, ["show", run_id], env=env)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    ledger = lines[lines.index("LLM calls, tokens and cost") :]
    assert ledger[2].split()[:3] == ["extract", "stub-small", "2"]
    assert ledger[3].split()[:3] == ["per_topic", "stub-small", "3"]
    assert ledger[4].strip() == "3 items"
    assert ledger[5].split()[:2] == ["total", "5"]
    assert max(len(line) for line in lines) <= 80

    listed = json.loads(CliRunner().invoke(app, ["calls", run_id, "--json"], env=env).stdout)
    calls = listed["calls"]
    assert len(calls) == 5
    assert [(c["node"], c["item"], c["seq"]) for c in calls] == [
        ("extract", None, 0), ("extract", None, 1),
        ("per_topic", 0, 0), ("per_topic", 1, 0), ("per_topic", 2, 0)]  # fmt: skip
    assert all(c["state"] == "answered" and c["usage_reported"] for c in calls)
    assert {c["price_source"] for c in calls} == {"config"}
    assert sum(c["cost_nanos"] for c in calls) == listed["ledger"]["total"]["cost_nanos"]
    assert listed["ledger"]["total"]["cost_nanos"] == sum(s.cost for s in spend.values())
    assert sum(c["input_tokens"] for c in calls) == sum(s.input_tokens for s in spend.values())
