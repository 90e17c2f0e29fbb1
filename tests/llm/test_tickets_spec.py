"""The ticket example's definition (``examples/tickets.py``), and ``llm_budget=`` on
``keel.workflow``: what the decorator writes into the spec, and a clear refusal of a
budget that cannot work. Running the example is ``tests/e2e/test_tickets_example.py``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, cast

import pytest

import keel
from keel.authoring.loading import load_workflow
from keel.errors import SpecError
from keel.spec.model import LlmBudget, LlmNode, WorkflowSpec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tickets.py"


def load_example(monkeypatch: pytest.MonkeyPatch, **environ: str) -> WorkflowSpec:
    """The example's spec, imported afresh (it reads the environment when imported)."""
    for name in ("KEEL_TICKETS_MODEL", "KEEL_TICKETS_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delitem(sys.modules, "tickets", raising=False)
    return load_workflow(str(EXAMPLE)).spec


def test_the_example_asks_for_a_triage_that_fits_its_enums_within_a_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = load_example(monkeypatch)
    assert spec.llm_budget == LlmBudget(per_run=0.05, on_exceed="ask", assignees=("lead",))
    nodes = {node.id: node for node in spec.nodes}
    classify = nodes["classify"]
    assert isinstance(classify, LlmNode)
    assert (classify.provider, classify.model) == ("local", "stub-small")
    assert classify.output is not None
    properties: Any = classify.output["properties"]
    assert properties["sentiment"]["enum"] == ["positive", "neutral", "negative"]
    assert properties["urgency"]["enum"] == ["low", "normal", "high"]
    assert classify.prompt == "Ticket from ${{ input.ticket.customer }}: ${{ input.ticket.text }}"
    for branch, sentiment in (("apologise", "negative"), ("answer", "neutral"),
                              ("thank", "positive")):  # fmt: skip
        assert nodes[branch].when == f'nodes.classify.output.sentiment == "{sentiment}"'
        assert nodes[branch].kind == "llm"
    assert nodes["approve_reply"].kind == "approval"


def test_the_model_and_provider_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = load_example(monkeypatch, KEEL_TICKETS_MODEL="smollm2", KEEL_TICKETS_PROVIDER="llama")
    models = {(n.provider, n.model) for n in spec.nodes if isinstance(n, LlmNode)}
    assert models == {("llama", "smollm2")}


def test_a_workflow_declares_its_llm_budget_in_python() -> None:
    @keel.workflow(llm_budget=keel.llm.LlmBudget(per_day=2.5, on_exceed="fail"))
    def budgeted(text: str) -> str:
        return keel.llm.step("Say: ${{ text }}", values={"text": text}, model="m",  # type: ignore[no-any-return]
                             max_tokens=10)  # fmt: skip

    assert budgeted.spec.llm_budget == LlmBudget(per_day=2.5)


def test_a_budget_that_cannot_work_is_refused_with_its_field() -> None:
    with pytest.raises(SpecError) as caught:

        @keel.workflow(llm_budget=cast(Any, {"per_run": -1, "on_exceed": "pay"}))
        def broke(text: str) -> str:
            return keel.llm.step("Say: ${{ text }}", values={"text": text}, model="m",  # type: ignore[no-any-return]
                                 max_tokens=10)  # fmt: skip

    message = str(caught.value)
    assert "llm_budget" in message
    assert "per_run" in message
    assert "on_exceed" in message
