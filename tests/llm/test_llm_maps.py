"""An ``llm`` node with ``for_each``: one request per item (each its own ledger rows),
the item in the prompt, the outputs in the items' order, and ``max_items`` bounding
what a run may spend."""

from __future__ import annotations

from tests.llm.running import LlmWorld

FLOW = """
name: classify_many
input_schema:
  type: object
  properties:
    tickets: {type: array, items: {type: string}}
nodes:
  - id: classify
    kind: llm
    provider: local
    model: stub-small
    max_tokens: 100
    for_each: input.tickets
    max_items: 3
    prompt: "Classify ticket ${{ item }} (one of ${{ size(input.tickets) }})"
    output:
      type: object
      properties:
        sentiment: {type: string, enum: [positive, negative, neutral]}
      required: [sentiment]
outputs:
  sentiments: nodes.classify.output
"""


def test_each_item_is_asked_once_with_the_item_in_its_prompt(llm_world: LlmWorld) -> None:
    tickets = ["it is broken", "thanks, great", "where is my invoice"]
    run = llm_world.run(FLOW, {"tickets": tickets})

    assert run.status == "succeeded"
    assert run.output == {"sentiments": [
        {"sentiment": "negative"}, {"sentiment": "positive"}, {"sentiment": "neutral"},
    ]}  # fmt: skip
    prompts = sorted(r["messages"][-1]["content"] for r in llm_world.stub.requests)
    assert prompts == sorted(f"Classify ticket {t} (one of 3)" for t in tickets)
    calls = llm_world.calls(run.id)
    assert sorted(c.item for c in calls if c.item is not None) == [0, 1, 2]
    assert all(c.state == "answered" and c.cost > 0 and c.seq == 0 for c in calls)


def test_more_items_than_max_items_fail_the_node_before_any_request(
    llm_world: LlmWorld,
) -> None:
    run = llm_world.run(FLOW, {"tickets": ["a", "b", "c", "d"]})

    assert run.status == "failed"
    (error,) = llm_world.errors(run.id, "classify")
    assert "4 items" in error.message
    assert "max_items=3" in error.message
    assert llm_world.stub.requests == []
    assert llm_world.calls(run.id) == []
