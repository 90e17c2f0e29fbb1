"""``keel estimate`` against what runs really cost: a workflow with a map of LLM steps, a
re-asked structured answer and a branch is run 20 times in this process against keel's
stub server (real HTTP on the loopback), each request recorded in the ledger; every
run's cost, per node and in all, lies within the estimate's bounds. Then the same
estimate, calibrated from those runs' calls, expects about what they cost on average,
and `keel estimate` says it was calibrated."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from keel.authoring.loading import load_workflow
from keel.cli.app import app
from keel.llm import steps
from keel.llm.calibration import calibration
from keel.llm.config import load_llm_config
from keel.llm.estimate import estimate
from keel.llm.stub_server import Json, Malformed, Reply, StubServer, Text
from keel.runtime.operations.control import start_run
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.store.sqlite import SQLiteStore

RUNS = 20
INPUT = {"text": "Our printer caught fire and the invoice was wrong twice."}
FLOW = """
name: topics
input_schema:
  type: object
  properties: {text: {type: string}}
  required: [text]
nodes:
  - id: extract
    kind: llm
    provider: stub
    model: stub-small
    system: You list the topics of a support ticket.
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
    prompt: "Write one paragraph about ${{ item }} for ${{ input.text }}"
    max_tokens: 120
  - id: deep
    kind: llm
    provider: stub
    model: stub-small
    when: size(nodes.extract.output.topics) > 2
    prompt: "Many topics: ${{ nodes.extract.output }}. Which matters most?"
    max_tokens: 80
  - id: summary
    kind: llm
    provider: stub
    model: stub-small
    prompt: "Summarise: ${{ nodes.per_topic.output }}"
    max_tokens: 100
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
    """Answers of every size a request allows, seeded: a structured answer is malformed
    one time in four on its first ask (the step re-asks), has 0 to 5 topics; a text is
    mostly short, now and then exactly ``max_tokens`` long (the stub counts 4 characters
    a token)."""

    def __init__(self) -> None:
        self.random = random.Random(22)
        self.lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> Reply:
        with self.lock:
            if request.get("response_format"):
                if len(request["messages"]) <= 2 and self.random.random() < 0.25:
                    return Malformed()
                count = self.random.randint(0, 5)
                return Json({"topics": [f"topic {n}" for n in range(count)]})
            limit = int(request.get("max_tokens") or request["max_completion_tokens"])
            if self.random.random() < 0.1:
                tokens = limit
            else:
                tokens = self.random.randint(1, max(1, limit // 4))
            return Text("word " * (tokens * 4 // 5) + "w" * (tokens * 4 % 5))


@pytest.fixture
def stub() -> Any:
    with StubServer(Answers()) as server:
        yield server


def test_the_bounds_contain_the_cost_of_20_runs_and_calibration_follows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub: StubServer
) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    (tmp_path / "keel.toml").write_text(CONFIG.format(url=stub.url))
    config = load_llm_config(tmp_path, environ={})
    monkeypatch.setattr(steps, "_config", lambda: config)  # the steps' config, read once
    spec = load_workflow(str(tmp_path / "flow.yaml")).spec
    predicted = estimate(spec, INPUT, config)
    assert predicted.unbounded == []
    assert predicted.unpriced == ()

    store = SQLiteStore(tmp_path / "keel.db")
    try:
        run_ids = [start_run(store, spec, INPUT).id for _ in range(RUNS)]
        worker = Worker(store, WorkerOptions(concurrency=4))
        try:
            finished = worker.run_until_finished(run_ids)
        finally:
            worker.close()
        assert [record.status for record in finished] == ["succeeded"] * RUNS
        costs = []
        for run_id in run_ids:
            spend = store.run_spend(run_id)
            for node in predicted.nodes:
                assert node.cost is not None
                assert node.cost.max is not None
                spent = spend.get(node.id)
                cost = spent.cost if spent else 0
                calls = spent.calls if spent else 0
                output = spent.output_tokens if spent else 0
                assert node.cost.min <= cost <= node.cost.max, (node.id, cost, node.cost)
                assert node.calls.min <= calls <= (node.calls.max or 0), node.id
                assert output <= (node.output_tokens.max or 0), node.id
                assert (spent.input_tokens if spent else 0) <= (node.input_tokens.max or 0)
            costs.append(sum(spent.cost for spent in spend.values()))
            assert predicted.cost.min <= costs[-1] <= (predicted.cost.max or 0)
        assert len(stub.requests) > RUNS * 2  # the map and the re-asks did ask
        mean = sum(costs) / RUNS

        learned = calibration(store, "topics")
        calibrated = estimate(spec, INPUT, config, learned)
    finally:
        store.close()
    assert learned.runs == RUNS
    assert learned.calls == len(stub.requests)
    assert all(node.calibrated for node in calibrated.nodes)
    # the mean of what they cost, where the uncalibrated guess (half of max_tokens) was off
    assert abs(calibrated.cost.expected - mean) <= 0.15 * mean
    assert abs(predicted.cost.expected - mean) > abs(calibrated.cost.expected - mean)
    assert calibrated.cost.min == predicted.cost.min
    assert calibrated.cost.max == predicted.cost.max

    monkeypatch.chdir(tmp_path)  # its keel.toml: the prices
    env = {"KEEL_DATABASE_URL": f"sqlite:///{tmp_path / 'keel.db'}", "KEEL_SERVER_URL": None}
    shown = CliRunner().invoke(
        app, ["estimate", "flow.yaml", "--json", "--input", json.dumps(INPUT)], env=env
    )
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["calibration"] == {"runs": RUNS, "calls": len(stub.requests)}
    assert data["total"]["cost_nanos"]["expected"] == calibrated.cost.expected
    text = CliRunner().invoke(
        app, ["estimate", "flow.yaml", "-i", f"text={INPUT['text']}"], env={**env, "COLUMNS": "80"}
    )
    assert f"from {len(stub.requests)} calls in the last {RUNS} runs of topics" in text.output
