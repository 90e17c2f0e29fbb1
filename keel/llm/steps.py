"""keel's own tasks that run ``llm`` and ``agent`` nodes (``keel.spec.model.MODEL_TASKS``).

Every worker may run them (``keel.runtime.execution.task_access``); they get the node's
definition (``step``), the values its templates read (``values``), a map's ``item``,
and the answers of people asked so far (``approvals``), and record every model request
in the ledger as they go (``keel.llm.asking``).
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

from keel.authoring.tasks import task
from keel.llm.asking import Asker
from keel.llm.budget import Budget
from keel.llm.config import LlmConfig, LlmConfigError, load_llm_config
from keel.llm.errors import NotConfigured, OutputInvalid, Refused, Truncated
from keel.llm.ledger import CallBook
from keel.llm.prompts import first_messages
from keel.llm.providers import UnknownProviderError, provider_for
from keel.llm.structured import feedback, parsed
from keel.llm.types import (
    Message,
    ModelRequest,
    ModelResponse,
    OutputMode,
    Provider,
    ProviderError,
)
from keel.runtime.execution.context import StepContext
from keel.spec.model import AgentNode, LlmNode


@functools.cache
def _config() -> LlmConfig:
    """Read once per process: a worker's config does not change under it."""
    return load_llm_config()


def _provider(name: str) -> tuple[LlmConfig, Provider]:
    """The config and the provider ``name``; a name not known is looked for again in a
    fresh read of the config, which may have gained it since (then ``keel retry`` works
    without restarting the worker)."""
    try:
        config = _config()
        return config, provider_for(name, config)
    except UnknownProviderError:
        _config.cache_clear()
        config = _config()
        return config, provider_for(name, config)


def output_mode(node: LlmNode | AgentNode, provider: Provider) -> OutputMode:
    if node.output is None:
        return "text"
    return provider.default_output_mode if node.output_mode == "auto" else node.output_mode


def asker_for(
    node: LlmNode | AgentNode, ctx: StepContext, budget: Any, approvals: list[dict[str, Any]]
) -> Asker:
    try:
        config, provider = _provider(node.provider)
    except (LlmConfigError, UnknownProviderError, ProviderError) as exc:
        # a provider that cannot be made here (a missing package, a bad config) will
        # not be made by a retry either
        raise NotConfigured(str(exc)) from None
    return Asker(CallBook(ctx), provider, config, node.model, Budget.of(budget),
                 approvals, degrade_to=node.degrade_to)  # fmt: skip


def node_of(kind: type[LlmNode] | type[AgentNode], step: dict[str, Any]) -> Any:
    return kind.model_validate({k: v for k, v in step.items() if k != "budget"})


def ended_badly(response: ModelResponse, max_tokens: int, asker: Asker | None = None) -> None:
    """Fail on an answer no re-ask mends: cut off at ``max_tokens``, or refused."""
    if response.finish_reason == "length":
        raise Truncated(
            f"the answer was cut off at max_tokens={max_tokens} "
            f"({response.usage.output_tokens} tokens written): raise max_tokens"
            f"{replayed(asker)}"
        )
    if response.finish_reason == "refusal":
        reason = response.refusal or response.text or "no reason"
        raise Refused(f"the model refused: {reason}{replayed(asker)}")


def replayed(asker: Asker | None) -> str:
    """What a failure adds when the answer that caused it was served from the ledger: a
    retry of the same request fails the same way, without buying it again."""
    if asker is None or asker.served_from is None:
        return ""
    return (
        f" (the answer attempt {asker.served_from} recorded, served again: the same request "
        "is never bought twice)"
    )


@task
def llm_step(
    step: dict[str, Any],
    values: dict[str, Any],
    ctx: StepContext,
    item: Any = None,
    approvals: list[dict[str, Any]] | None = None,
) -> Any:
    """Ask the node's model; with an ``output`` schema, re-ask (at most ``reasks`` times,
    each recorded and charged) until the answer fits, and return its data."""
    node: LlmNode = node_of(LlmNode, step)
    asker = asker_for(node, ctx, step.get("budget"), approvals or [])
    messages = first_messages(node.prompt, node.system, values, item)
    request = ModelRequest(
        model=node.model, messages=tuple(messages), max_tokens=node.max_tokens,
        temperature=node.temperature, output_schema=node.output,
        output_mode=output_mode(node, asker.provider), stream=node.stream,
    )  # fmt: skip
    asker.to_finish = asker.reservation(request) * node.reasks
    for asked in range(node.reasks + 1):
        response = asker.ask(request)
        ended_badly(response, node.max_tokens, asker)
        if node.output is None:
            return response.text or ""
        data, problem = parsed(response.text, dict(node.output))
        if problem is None:
            return data
        ctx.logger.warning("answer %d did not fit the schema: %s", asked + 1, problem)
        asker.to_finish = asker.reservation(request) * (node.reasks - asked - 1)
        said = (Message("assistant", response.text),) if response.text else ()  # never empty
        again = (*said, Message("user", feedback(problem)))
        request = replace(request, messages=(*request.messages, *again))
    raise OutputInvalid(
        f"no answer fitted the schema after {node.reasks} re-asks: {problem}{replayed(asker)}"
    )


@task
def agent_step(
    step: dict[str, Any],
    values: dict[str, Any],
    ctx: StepContext,
    approvals: list[dict[str, Any]] | None = None,
) -> Any:
    """Run the node's agent loop (``keel.llm.agent_loop``)."""
    from keel.llm.agent_loop import run_agent

    node: AgentNode = node_of(AgentNode, step)
    asker = asker_for(node, ctx, step.get("budget"), approvals or [])
    return run_agent(node, asker, values, ctx, approvals or [])
