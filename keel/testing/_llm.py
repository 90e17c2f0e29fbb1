"""Offline answers for ``llm`` nodes in a test's run: no provider, no network, no cost.

The node's prompt is filled in as the real step fills it (its templates read the same
values), then answered by what the test gave (``llm_replies``: the answer itself, or a
function of the prompt's text) or, when it gave nothing for the node, by the rule-based
answer of keel's stub server (``keel.llm.stub_responder.rule_based``: JSON that fits the
node's ``output`` schema, else a short text). The answer is checked as a model's would
be: a node with an ``output`` schema fails (``OutputInvalid``) on an answer that does not
fit it, a node without one on an answer that is not text. No re-asks, no ledger entry.

An ``agent`` node is a loop of requests and tool calls that no one reply stands for: a
test stubs it (``stubs``), else it fails (``NotConfigured``) saying so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def offline_answer(node_id: str, reply: Any, given: bool) -> Callable[..., Any]:
    """The task an ``llm`` node runs in a test: ``reply`` answers it when ``given``."""

    def answer(step: dict[str, Any], values: dict[str, Any], item: Any = None) -> Any:
        from keel.llm.errors import OutputInvalid
        from keel.llm.prompts import first_messages
        from keel.llm.steps import node_of
        from keel.llm.structured import parsed
        from keel.spec.model import LlmNode

        node: LlmNode = node_of(LlmNode, step)
        messages = first_messages(node.prompt, node.system, values, item)
        prompt = messages[-1].content or ""
        if given:
            data = reply(prompt) if callable(reply) else reply
            said = f"the reply llm_replies gives node {node_id}"
        else:
            data = _rule_based(messages, node.output)
            said = f"the stub's answer for node {node_id} (give one in llm_replies)"
        if node.output is None:
            if not isinstance(data, str):
                raise OutputInvalid(f"{said} is {type(data).__name__}, not text: the node "
                                    "has no output schema, so its answer is text")  # fmt: skip
            return data
        _, problem = parsed(json.dumps(data), dict(node.output))
        if problem is not None:
            raise OutputInvalid(f"{said} does not fit its output schema: {problem}")
        return data

    return answer


def _rule_based(messages: list[Any], schema: Any) -> Any:
    from keel.llm.stub_replies import Json
    from keel.llm.stub_responder import rule_based

    request: dict[str, Any] = {"messages": [{"role": m.role, "content": m.content}
                                            for m in messages]}  # fmt: skip
    if schema is not None:
        request["response_format"] = {"type": "json_schema",
                                      "json_schema": {"schema": dict(schema)}}  # fmt: skip
    answer = rule_based(request)
    return answer.value if isinstance(answer, Json) else getattr(answer, "text", "")


def no_agent(node_id: str) -> Callable[..., Any]:
    """The task an ``agent`` node no stub replaces runs in a test: it fails, saying why."""

    def refuse() -> Any:
        from keel.llm.errors import NotConfigured

        raise NotConfigured(
            f"agent node {node_id} would ask a model: give it a stub "
            f"(stubs={{{node_id!r}: ...}}), or run with llm_offline=False"
        )

    return refuse
