"""What a new user tripped over, as tests: an unclosed template is refused before a run;
a failed request that got nothing back is not "estimated usage"; a provider that cannot
be made (a missing package) fails at once instead of being retried; approving again
what a step asked says it was decided."""

from __future__ import annotations

import pytest

from keel.errors import KeelError, SpecError
from keel.llm.stub_server import HttpError, Json
from keel.runtime.operations.control import start_run
from keel.runtime.operations.interventions import approve
from keel.spec import check, parse_spec
from tests.llm.agentrun import Runner, runner_fixture  # noqa: F401
from tests.llm.running import LlmWorld

FLOW = """
name: ask
nodes:
  - id: classify
    kind: llm
    provider: local
    model: stub-small
    max_tokens: 20
    retry: {max_attempts: 3, initial_backoff: 0}
    prompt: "Classify: ${{ input.text }}"
    output: {type: object, properties: {label: {type: string}}, required: [label]}
"""


def test_an_unclosed_template_is_refused_before_anything_runs() -> None:
    node = {"id": "a", "kind": "llm", "model": "m", "max_tokens": 5, "prompt": "Hi ${{ input.x"}
    with pytest.raises(SpecError, match=r"prompt has a '\$\{\{' with no '\}\}' closing it"):
        check(parse_spec({"name": "w", "nodes": [node]}))


def test_a_failed_request_without_usage_counts_no_tokens_and_no_estimate(
    llm_world: LlmWorld,
) -> None:
    llm_world.stub.script(HttpError(status=503), Json({"label": "x"}))
    run = llm_world.run(FLOW, {"text": "hello"})
    assert run.status == "succeeded"
    failed, answered = llm_world.calls(run.id)
    assert (failed.state, answered.state) == ("failed", "answered")
    assert (failed.input_tokens, failed.output_tokens, failed.cost) == (0, 0, 0)
    assert failed.usage_reported  # nothing came back: nothing was estimated either
    assert llm_world.store.run_spend(run.id)["classify"].estimated == 0


def test_a_provider_that_cannot_be_made_fails_once(llm_world: LlmWorld) -> None:
    llm_world.write_config(
        '[llm.providers.local]\nkind = "anthropic"\nbase_url = "http://127.0.0.1:9/v1"\n'
    )
    import sys

    saved = sys.modules.get("anthropic")
    sys.modules["anthropic"] = None  # type: ignore[assignment]  # as if not installed
    try:
        run = llm_world.run(FLOW, {"text": "hello"})
    finally:
        if saved is not None:
            sys.modules["anthropic"] = saved
        else:
            sys.modules.pop("anthropic")
    assert run.status == "failed"
    errors = llm_world.errors(run.id, "classify")
    assert len(errors) == 1  # not retried, though the policy allows 3 attempts
    assert "needs the anthropic package" in errors[0].message
    assert llm_world.stub.requests == []


def test_approving_again_says_what_the_step_asked_was_decided(runner: Runner) -> None:
    flow = FLOW.replace(
        "name: ask\n", "name: ask\nllm_budget: {per_run: 0.000001, on_exceed: ask}\n"
    )
    spec = runner.world.spec(flow)
    run_id = start_run(runner.store, spec, {"text": "hello"}).id
    assert runner.settle(run_id) == "running"  # waits: the first request does not fit
    approve(runner.store, run_id, "classify", data={"extra": 1.0}, by="ann")
    with pytest.raises(KeelError, match="what it asked was approved by ann"):
        approve(runner.store, run_id, "classify", data={"extra": 1.0}, by="bo")
