"""``llm`` nodes run for real: a workflow run in this process (SQLite store, a worker)
asks keel's stub server over HTTP, and the node's output, its failure and the ledger's
rows are checked as a user would see them."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel

import keel
import keel.llm
from keel.llm.providers.openai_compatible import OpenAICompatible
from keel.llm.stub_server import HttpError, Json, Malformed, Refusal, Text, Truncated
from keel.store.model_calls import NANOS
from tests.llm.running import LlmWorld

SCHEMA = """
    output:
      type: object
      properties:
        sentiment: {type: string, enum: [positive, negative, neutral]}
      required: [sentiment]"""


def flow(extra: str = SCHEMA, *, retry: str = "") -> str:
    """A workflow of one ``llm`` node, ``classify``, on provider ``local`` (the stub)."""
    return f"""
name: classify_ticket
input_schema:
  type: object
  properties:
    text: {{type: string}}
nodes:
  - id: classify
    kind: llm
    provider: local
    model: stub-small
    max_tokens: 100
    prompt: "Classify this ticket: ${{{{ input.text }}}}"{extra}{retry}
outputs:
  result: nodes.classify.output
"""


def cost_of(input_tokens: int, output_tokens: int) -> int:
    """What the stub-small price ($1 / $2 per million) charges, in nano-dollars."""
    return (input_tokens * 1 + output_tokens * 2) * NANOS // 1_000_000


def test_a_structured_answer_that_fits_is_the_output_and_is_priced(llm_world: LlmWorld) -> None:
    run = llm_world.run(flow(), {"text": "it arrived broken, I want a refund"})

    assert run.status == "succeeded"
    assert llm_world.output(run.id, "classify") == {"sentiment": "negative"}
    assert run.output == {"result": {"sentiment": "negative"}}
    (call,) = llm_world.calls(run.id)
    assert (call.state, call.node, call.attempt, call.provider, call.model) == (
        "answered", "classify", 1, "local", "stub-small",
    )  # fmt: skip
    assert call.usage_reported
    assert call.input_tokens > 0
    assert call.output_tokens > 0
    assert call.cost == cost_of(call.input_tokens, call.output_tokens) > 0
    assert call.price_source == "config"
    assert call.reserved >= call.cost
    (request,) = llm_world.stub.requests
    assert request["response_format"]["type"] == "json_schema"
    assert "it arrived broken" in request["messages"][-1]["content"]


class Verdict(BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]
    reason: str


@keel.workflow
def triage(text: str) -> Any:
    return keel.llm.step(
        "Classify: ${{ text }}", values={"text": text}, model="stub-small", provider="local",
        max_tokens=50, output=Verdict, system="You sort support tickets.",
    )  # fmt: skip


def test_a_python_workflow_asks_with_its_pydantic_model(llm_world: LlmWorld) -> None:
    run = llm_world.run(triage.spec, {"text": "thanks, it works great"})

    assert run.status == "succeeded", llm_world.errors(run.id, "llm")
    (node,) = triage.spec.nodes
    output = llm_world.output(run.id, node.id)
    assert Verdict.model_validate(output).sentiment == "positive"
    (request,) = llm_world.stub.requests
    assert request["messages"][0] == {"role": "system", "content": "You sort support tickets."}
    assert request["messages"][1]["content"] == "Classify: thanks, it works great"


def test_without_a_schema_the_output_is_the_text(llm_world: LlmWorld) -> None:
    llm_world.stub.script(Text("Dear customer, sorry."))
    run = llm_world.run(flow(""), {"text": "late again"})

    assert run.status == "succeeded"
    assert llm_world.output(run.id, "classify") == "Dear customer, sorry."
    (request,) = llm_world.stub.requests
    assert "response_format" not in request
    (call,) = llm_world.calls(run.id)
    assert call.state == "answered"
    assert call.finish_reason == "stop"


RETRY = """
    retry: {max_attempts: 3, initial_backoff: 0}"""


def test_a_truncated_answer_fails_at_once_and_is_not_asked_again(llm_world: LlmWorld) -> None:
    llm_world.stub.script(Truncated('{"sentiment": "neg'))
    run = llm_world.run(flow(retry=RETRY), {"text": "broken"})

    assert run.status == "failed"
    (error,) = llm_world.errors(run.id, "classify")  # one attempt: not retried
    assert error.type.endswith("Truncated")
    assert not error.retryable
    assert "max_tokens=100" in error.message
    assert len(llm_world.stub.requests) == 1, "a truncated answer is never re-asked"
    (call,) = llm_world.calls(run.id)
    assert call.state == "answered"
    assert call.finish_reason == "length"
    assert call.cost > 0


def test_a_refusal_fails_at_once(llm_world: LlmWorld) -> None:
    llm_world.stub.script(Refusal("I will not classify that."))
    run = llm_world.run(flow(retry=RETRY), {"text": "broken"})

    assert run.status == "failed"
    (error,) = llm_world.errors(run.id, "classify")
    assert error.type.endswith("Refused")
    assert not error.retryable
    assert "I will not classify that." in error.message
    assert len(llm_world.stub.requests) == 1


def test_a_malformed_answer_is_asked_again_with_what_was_wrong(llm_world: LlmWorld) -> None:
    llm_world.stub.script(Malformed('{"sentiment": negative}'), Json({"sentiment": "negative"}))
    run = llm_world.run(flow(), {"text": "broken"})

    assert run.status == "succeeded"
    assert llm_world.output(run.id, "classify") == {"sentiment": "negative"}
    first, second = llm_world.stub.requests
    assert len(second["messages"]) == len(first["messages"]) + 2
    said, feedback = second["messages"][-2:]
    assert said == {"role": "assistant", "content": '{"sentiment": negative}'}
    assert feedback["role"] == "user"
    assert "not valid JSON" in feedback["content"]
    calls = llm_world.calls(run.id)
    assert [(c.seq, c.attempt, c.state) for c in calls] == [(0, 1, "answered"), (1, 1, "answered")]
    assert all(c.cost > 0 for c in calls), "the re-ask is charged, and so is the bad answer"
    assert any("did not fit the schema" in line for line in llm_world.logs(run.id, "classify"))


def test_an_answer_that_never_fits_fails_after_the_re_asks(llm_world: LlmWorld) -> None:
    wrong = Json({"sentiment": "furious"})
    llm_world.stub.script(wrong, wrong, wrong, wrong)
    run = llm_world.run(flow(SCHEMA + "\n    reasks: 2", retry=RETRY), {"text": "broken"})

    assert run.status == "failed"
    (error,) = llm_world.errors(run.id, "classify")
    assert error.type.endswith("OutputInvalid")
    assert not error.retryable
    assert "2 re-asks" in error.message
    assert "sentiment" in error.message
    assert len(llm_world.stub.requests) == 3
    assert len(llm_world.calls(run.id)) == 3
    assert "'furious' is not one of" in llm_world.stub.requests[2]["messages"][-1]["content"]


def test_a_rate_limit_waits_as_long_as_the_provider_asked(llm_world: LlmWorld) -> None:
    llm_world.stub.script(HttpError(status=429, message="slow down", retry_after="1"))
    retry = "\n    retry: {max_attempts: 2, initial_backoff: 0.01, jitter: 0}"
    run = llm_world.run(flow(retry=retry), {"text": "broken"})

    assert run.status == "succeeded"
    assert llm_world.output(run.id, "classify") == {"sentiment": "negative"}
    (error,) = llm_world.errors(run.id, "classify")
    assert error.retryable
    assert error.retry_after == 1.0
    assert "429" in error.message
    events = llm_world.events(run.id)
    failed = next(e for e in events if e.event.kind == "node_failed")
    second = next(
        e.event for e in events if e.event.kind == "node_scheduled" and e.event.attempt == 2
    )
    assert second.not_before is not None
    assert second.not_before >= failed.at + 1.0
    started = next(e for e in events if e.event.kind == "node_started" and e.event.attempt == 2)
    assert started.at >= second.not_before
    first, answered = llm_world.calls(run.id)
    assert (first.attempt, first.state, first.cost) == (1, "failed", 0)
    assert first.error["status"] == 429
    assert first.error["retry_after"] == 1.0
    assert (answered.attempt, answered.state) == (2, "answered")


def test_an_answer_without_usage_is_estimated_and_says_so(llm_world: LlmWorld) -> None:
    llm_world.stub.script(Json({"sentiment": "neutral"}, usage=None))
    run = llm_world.run(flow(), {"text": "a question about my invoice"})

    assert run.status == "succeeded"
    (call,) = llm_world.calls(run.id)
    assert not call.usage_reported
    assert call.input_tokens > 0
    assert call.output_tokens > 0
    assert call.cost == cost_of(call.input_tokens, call.output_tokens)


def test_a_streamed_answer_is_in_the_attempts_log(llm_world: LlmWorld) -> None:
    words = " ".join(f"word{n}" for n in range(60))  # longer than one log line
    llm_world.stub.script(Text(f"Dear customer,\n{words}\nRegards"))
    run = llm_world.run(flow("\n    stream: true"), {"text": "late"})

    assert run.status == "succeeded"
    assert llm_world.output(run.id, "classify") == f"Dear customer,\n{words}\nRegards"
    (request,) = llm_world.stub.requests
    assert request["stream"] is True
    streamed = [line for line in llm_world.logs(run.id, "classify") if line.startswith("│ ")]
    assert "".join(line[2:] for line in streamed) == f"Dear customer,{words}Regards"
    assert streamed[0] == "│ Dear customer,"
    (call,) = llm_world.calls(run.id)
    assert call.usage_reported
    assert call.cost > 0


def test_a_streamed_structured_answer_is_the_output(llm_world: LlmWorld) -> None:
    run = llm_world.run(flow(SCHEMA + "\n    stream: true"), {"text": "thanks, great"})

    assert run.status == "succeeded"
    assert llm_world.output(run.id, "classify") == {"sentiment": "positive"}
    streamed = [line for line in llm_world.logs(run.id, "classify") if line.startswith("│ ")]
    assert "".join(line[2:] for line in streamed) == '{"sentiment": "positive"}'


def test_a_request_the_provider_rejects_fails_without_a_retry(llm_world: LlmWorld) -> None:
    llm_world.stub.script(HttpError(status=400, message="max_tokens is too large"))
    run = llm_world.run(flow(retry=RETRY), {"text": "broken"})

    assert run.status == "failed"
    (error,) = llm_world.errors(run.id, "classify")
    assert error.type.endswith("ProviderRefused")
    assert not error.retryable
    assert "HTTP 400" in error.message
    assert "max_tokens is too large" in error.message
    (call,) = llm_world.calls(run.id)
    assert call.state == "failed"
    assert call.error["status"] == 400


def test_an_unknown_provider_fails_with_what_is_known(llm_world: LlmWorld) -> None:
    spec = flow(retry=RETRY).replace("provider: local", "provider: nowhere")
    run = llm_world.run(spec, {"text": "x"})

    assert run.status == "failed"
    (error,) = llm_world.errors(run.id, "classify")  # not retried: the config is read again
    assert error.type.endswith("NotConfigured")
    assert not error.retryable
    assert "no LLM provider named 'nowhere'" in error.message
    assert "local" in error.message
    assert "[llm.providers.nowhere]" in error.message
    assert llm_world.stub.requests == []
    assert llm_world.calls(run.id) == []


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_is_retried(llm_world: LlmWorld, status: int) -> None:
    llm_world.stub.script(HttpError(status=status))
    run = llm_world.run(flow(retry=RETRY), {"text": "broken"})

    assert run.status == "succeeded"
    (error,) = llm_world.errors(run.id, "classify")
    assert error.retryable
    assert f"HTTP {status}" in error.message
    assert [c.state for c in llm_world.calls(run.id)] == ["failed", "answered"]


def test_a_provider_added_to_the_config_is_found_on_a_retry(llm_world: LlmWorld) -> None:
    from keel.runtime.operations.manual import retry_run
    from tests.llm.running import config_text

    run = llm_world.run(flow().replace("provider: local", "provider: later"), {"text": "x"})
    assert run.status == "failed"
    table = f'\n[llm.providers.later]\nbase_url = "{llm_world.stub.url}"\n'
    (llm_world.folder / "keel.toml").write_text(config_text(extra=table))  # no cache_clear

    retry_run(llm_world.store, run.id, by="test")
    assert llm_world.finish(run.id).status == "succeeded"
    assert len(llm_world.stub.requests) == 1


def test_an_empty_answer_is_asked_again_without_an_empty_message(llm_world: LlmWorld) -> None:
    llm_world.stub.script(Text(""), Json({"sentiment": "neutral"}))
    run = llm_world.run(flow(), {"text": "my invoice"})

    assert run.status == "succeeded"
    first, second = llm_world.stub.requests
    assert second["messages"][:-1] == first["messages"]
    assert "the answer was empty" in second["messages"][-1]["content"]


OPTIONAL_NOTE = """
input_schema:
  type: object
  properties:
    text: {type: string}
    note: {type: string}"""


def test_a_template_that_reads_a_missing_value_fails_without_a_retry(
    llm_world: LlmWorld,
) -> None:
    text = flow(retry=RETRY).replace("input.text", "input.note")
    text = text.replace(text[text.index("\ninput_schema") : text.index("\nnodes:")], OPTIONAL_NOTE)
    run = llm_world.run(text, {"text": "x"})

    assert run.status == "failed"
    (error,) = llm_world.errors(run.id, "classify")
    assert error.type.endswith("TemplateError")
    assert not error.retryable
    assert error.message.startswith("prompt: cannot evaluate 'input.note'")
    assert llm_world.stub.requests == []


@pytest.mark.parametrize("mode", ["json_schema", "json_object", "tools", "prompted"])
@pytest.mark.parametrize("stream", [False, True])
def test_each_output_mode_gives_the_data(llm_world: LlmWorld, mode: str, stream: bool) -> None:
    extra = f"{SCHEMA}\n    output_mode: {mode}\n    stream: {str(stream).lower()}"
    run = llm_world.run(flow(extra), {"text": "thanks, great"})

    assert run.status == "succeeded", llm_world.errors(run.id, "classify")
    assert llm_world.output(run.id, "classify") == {"sentiment": "positive"}
    (call,) = llm_world.calls(run.id)
    assert call.request["output_mode"] == mode


def test_a_fault_after_the_request_left_counts_it_possibly_billed(
    llm_world: LlmWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a fault in keel or the SDK after the provider answered (the stub cannot make one):
    # the call is not left "sent" for ever, and is charged as what it may have cost
    real = OpenAICompatible.complete

    def broken(self: OpenAICompatible, *args: Any, **kwargs: Any) -> Any:
        real(self, *args, **kwargs)
        raise RuntimeError("the answer could not be read")

    monkeypatch.setattr(OpenAICompatible, "complete", broken)
    run = llm_world.run(flow(), {"text": "broken"})

    assert run.status == "failed"
    (error,) = llm_world.errors(run.id, "classify")
    assert error.type == "RuntimeError"
    (call,) = llm_world.calls(run.id)
    assert call.state == "possibly_billed"
    assert call.cost == call.reserved > 0
    assert "RuntimeError while waiting for the answer" in call.error["message"]
    assert len(llm_world.stub.requests) == 1
