"""The agent loop: the model answers or asks for tool calls; each call runs the tool's
keel task (``keel.llm.tool_calls``) and its result goes back to the model; until the
model answers (fitting the output schema, if the node has one) or a bound is reached:
``max_turns`` requests, ``max_tool_calls`` calls, ``max_cost`` dollars (``Asker``
refuses a request that would pass it), the same call ``repeat_limit`` times in a row.

Everything is recorded as it happens, in the ledger: each model turn (``keel.llm.asking``)
and each tool call (kind ``tool``, its fingerprint the tool's name and its canonical
arguments). A resumed attempt rebuilds the same conversation from the records, turn by
turn: the model is not asked again for a turn it answered, and a tool is not run again
for a call whose result was recorded. A tool call's idempotency key
(``ctx.idempotency_key`` inside the tool) comes from the same name and arguments, so a
call repeated after a crash is the same call to the outside world too.

A tool marked ``approve`` is not run until a person approved that exact call: the node
waits (``ApprovalNeeded``, keyed by the arguments' hash), and runs again once approved;
a call with other arguments needs its own approval.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from keel.llm.asking import Asker
from keel.llm.budget import nanos
from keel.llm.errors import AgentStopped
from keel.llm.prompts import first_messages
from keel.llm.steps import ended_badly, output_mode
from keel.llm.structured import feedback, parsed
from keel.llm.tool_calls import check_tools, description, signature, tool_result
from keel.llm.types import Message, ModelRequest, ToolSpec
from keel.runtime.execution.context import StepContext
from keel.spec.model import AgentNode


def run_agent(
    node: AgentNode,
    asker: Asker,
    values: dict[str, Any],
    ctx: StepContext,
    approvals: list[dict[str, Any]],
) -> Any:
    tools = {tool.tool_name: tool for tool in node.tools}
    check_tools(tools)
    specs = tuple(ToolSpec(name, description(tool), dict(tool.parameters))
                  for name, tool in tools.items())  # fmt: skip
    mode = output_mode(node, asker.provider)
    if mode == "tools" and tools:  # the schema cannot be a forced tool beside real tools
        mode = "prompted"
    request = ModelRequest(
        model=node.model, messages=tuple(first_messages(node.prompt, node.system, values)),
        max_tokens=node.max_tokens, temperature=node.temperature, output_schema=node.output,
        output_mode=mode, tools=specs, stream=node.stream,
    )  # fmt: skip
    asker.node_limit = nanos(node.max_cost)
    calls_made, recent = 0, list[str]()
    for turn in range(node.max_turns):
        asker.to_finish = _to_finish(asker, request, node.max_turns - turn - 1)
        response = asker.ask(request)
        ended_badly(response, node.max_tokens)
        said = Message("assistant", response.text, tool_calls=response.tool_calls)
        if response.tool_calls:
            answers = []
            for call in response.tool_calls:
                calls_made += 1
                if calls_made > node.max_tool_calls:
                    raise AgentStopped(f"the agent asked for more than max_tool_calls="
                                       f"{node.max_tool_calls} tool calls")  # fmt: skip
                recent = [*recent, signature(call)][-node.repeat_limit :]
                if len(recent) == node.repeat_limit and len(set(recent)) == 1:
                    raise AgentStopped(
                        f"the agent asked for the same call {node.repeat_limit} times in a "
                        f"row: {call.name}({call.arguments})"
                    )
                result = tool_result(tools, call, ctx, asker.book, approvals)
                answers.append(Message("tool", json.dumps(result, ensure_ascii=False),
                                       tool_call_id=call.id))  # fmt: skip
            request = replace(request, messages=(*request.messages, said, *answers))
            continue
        if node.output is None:
            return response.text or ""
        data, problem = parsed(response.text, dict(node.output))
        if problem is None:
            return data
        ctx.logger.warning("the agent's answer did not fit the schema: %s", problem)
        request = replace(request, messages=(*request.messages, said,
                                             Message("user", feedback(problem))))  # fmt: skip
    raise AgentStopped(f"the agent did not finish within max_turns={node.max_turns}")


def _to_finish(asker: Asker, request: ModelRequest, turns_left: int) -> int:
    """The most the turns after this request may cost: each reserves at least what this
    one does, and the node's ``max_cost`` bounds them all (nano-dollars)."""
    reserved = asker.reservation(request)
    assert asker.node_limit is not None
    room = asker.node_limit - asker.book.node_cost - reserved
    return max(0, min(reserved * turns_left, room))
