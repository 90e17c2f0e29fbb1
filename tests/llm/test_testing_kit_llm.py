"""``keel.testing.run`` with ``llm`` and ``agent`` nodes: offline by default (no model,
no network: the socket module refuses), and through a real provider on keel's stub
server on the loopback with ``llm_offline=False``."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.authoring.yaml_source import load_yaml_text
from keel.llm.stub_server import Json
from keel.spec.model import WorkflowSpec
from keel.testing import run
from tests.llm.offline import refuse_network
from tests.llm.running import LlmWorld

FLOW = """
name: tickets
nodes:
  - id: classify
    kind: llm
    provider: local
    model: stub-small
    max_tokens: 100
    prompt: "Classify this ticket: ${{ input.text }}"
    output:
      type: object
      properties: {sentiment: {type: string, enum: [positive, neutral, negative]}}
      required: [sentiment]
outputs:
  result: nodes.classify.output
"""

AGENT = """
name: helper
nodes:
  - id: helper
    kind: agent
    provider: local
    model: stub-small
    max_tokens: 100
    max_turns: 3
    max_tool_calls: 3
    max_cost: 0.01
    prompt: "Help with: ${{ input.text }}"
    tools: [tests.llm.agentflows:weather]
outputs:
  result: nodes.helper.output
"""


def _spec(text: str) -> WorkflowSpec:
    (spec,) = load_yaml_text(text, "flow.yaml")
    return spec


def test_offline_llm_nodes_never_touch_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_network(monkeypatch)
    r = run(_spec(FLOW), {"text": "I want a refund, it arrived broken"})

    assert r.status == "succeeded", r.error
    # the stub server's rules, without the server: an angry ticket is negative
    assert r.output == {"result": {"sentiment": "negative"}}


def test_an_offline_agent_node_without_a_stub_fails_saying_to_stub_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refuse_network(monkeypatch)
    r = run(_spec(AGENT), {"text": "where is my order"})

    assert r.status == "failed"
    error = r.node("helper").error
    assert error is not None
    assert error.type.endswith("NotConfigured")
    assert "stubs={'helper': ...}" in error.message

    stubbed = run(_spec(AGENT), {"text": "x"}, stubs={"helper": lambda values: "on its way"})
    assert stubbed.output == {"result": "on its way"}


def test_with_llm_offline_false_the_node_asks_the_configured_provider(
    llm_world: LlmWorld,
) -> None:
    llm_world.stub.script(Json({"sentiment": "positive"}))
    with run(_spec(FLOW), {"text": "thanks!"}, llm_offline=False) as r:
        assert r.status == "succeeded", r.error
        assert r.output == {"result": {"sentiment": "positive"}}
        (call,) = r.store.model_calls(r.id)  # recorded in the ledger, from the task's thread
        assert call.node == "classify"
        folder = Path(str(getattr(r.store, "path", "")))
    assert len(llm_world.stub.requests) == 1
    assert not folder.parent.exists()  # its temporary folder went with it


def test_llm_replies_need_llm_offline() -> None:
    from keel.errors import InputError

    with pytest.raises(InputError, match="llm_replies needs llm_offline=True"):
        run(_spec(FLOW), {"text": "x"}, llm_replies={"classify": {}}, llm_offline=False)
