"""The agent loop: the model answers or asks for tool calls; each call runs the tool's
keel task and its result goes back to the model; until the model answers (fitting the
output schema, if the node has one) or a bound is reached.

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

import hashlib
import json
import time
from dataclasses import replace
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from pydantic_core import to_jsonable_python

from keel.engine.backoff import backoff
from keel.errors import ApprovalNeeded
from keel.llm.asking import Asker
from keel.llm.budget import nanos
from keel.llm.errors import AgentStopped
from keel.llm.prompts import first_messages
from keel.llm.steps import ended_badly, output_mode
from keel.llm.structured import feedback, parsed
from keel.llm.types import Message, ModelRequest, ToolCall, ToolSpec
from keel.runtime.execution.context import StepContext, _current
from keel.runtime.execution.invoke import TaskCatalog
from keel.spec.canonical import canonical_json
from keel.spec.model import AgentNode, AgentTool
from keel.spec.policies import RetryPolicy
from keel.store.model_calls import CallEnded

_TOOLS = TaskCatalog()


def run_agent(
    node: AgentNode,
    asker: Asker,
    values: dict[str, Any],
    ctx: StepContext,
    approvals: list[dict[str, Any]],
) -> Any:
    tools = {tool.tool_name: tool for tool in node.tools}
    specs = tuple(ToolSpec(name, tool.description or _doc(tool), dict(tool.parameters))
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
        asker.to_finish = asker.reservation(request) * (node.max_turns - turn - 1)
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
                recent = [*recent, _signature(call)][-node.repeat_limit :]
                if len(recent) == node.repeat_limit and len(set(recent)) == 1:
                    raise AgentStopped(
                        f"the agent asked for the same call {node.repeat_limit} times in a "
                        f"row: {call.name}({call.arguments})"
                    )
                result = _tool_result(tools, call, ctx, asker, approvals)
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


def _doc(tool: AgentTool) -> str:
    try:
        function = _TOOLS.get(tool.task).function
    except LookupError:
        return ""
    return (function.__doc__ or "").strip().split("\n\n")[0]


def _signature(call: ToolCall) -> str:
    try:
        arguments = canonical_json(json.loads(call.arguments or "{}"))
    except ValueError:
        arguments = call.arguments
    return f"{call.name}\n{arguments}"


def _tool_result(
    tools: dict[str, AgentTool],
    call: ToolCall,
    ctx: StepContext,
    asker: Asker,
    approvals: list[dict[str, Any]],
) -> Any:
    """What the model is told a call gave: the tool's result, or an error it can act on
    (an unknown tool, arguments that do not fit, a tool that failed every attempt)."""
    tool = tools.get(call.name)
    if tool is None:
        return {"error": f"there is no tool '{call.name}' (tools: {', '.join(tools)})"}
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError as exc:
        return {"error": f"the arguments are not valid JSON: {exc}"}
    problem = best_match(Draft202012Validator(dict(tool.parameters)).iter_errors(arguments))
    if problem is not None:
        return {"error": f"the arguments do not fit the tool's parameters: {problem.message}"}
    mark = hashlib.sha256(_signature(call).encode()).hexdigest()
    book = asker.book
    recorded = book.recorded("tool", mark)
    if recorded is not None:
        return (recorded.response or {}).get("result")
    if tool.approve and not _approved(approvals, call.name, mark):
        raise ApprovalNeeded(
            f"Allow {call.name}?", key=f"tool:{call.name}:{mark[:16]}",
            description=f"The agent '{ctx.node}' wants to call {call.name} with "
                        f"{json.dumps(arguments, ensure_ascii=False)}",
            data={"tool": call.name, "arguments": arguments},
        )  # fmt: skip
    sent = book.send("tool", mark, "tool", call.name,
                     {"tool": call.name, "arguments": arguments}, 0, None)  # fmt: skip
    assert isinstance(sent, str)  # no limits: never refused
    started = time.monotonic()
    result, error = _run_tool(tool, arguments, ctx, mark)
    book.end(CallEnded(id=sent, state="answered" if error is None else "failed",
                       response=None if error else {"result": result}, error=error,
                       latency=time.monotonic() - started, at=time.time()))  # fmt: skip
    return result if error is None else {"error": error["message"]}


def _approved(approvals: list[dict[str, Any]], name: str, mark: str) -> bool:
    return any(answer.get("key") == f"tool:{name}:{mark[:16]}" for answer in approvals)


def _run_tool(
    tool: AgentTool, arguments: dict[str, Any], ctx: StepContext, mark: str
) -> tuple[Any, dict[str, Any] | None]:
    """Run the tool's task with its retry policy; its result as JSON, or the error of
    its last attempt."""
    policy = tool.retry or RetryPolicy(max_attempts=3)
    prepared = _TOOLS.get(tool.task)
    node = f"{ctx.node}/{tool.tool_name}#{mark[:12]}"
    error: dict[str, Any] = {}
    for attempt in range(1, policy.max_attempts + 1):
        tool_ctx = StepContext(ctx.run_id, ctx.workflow, node, attempt, None, ctx.span)
        token = _current.set(tool_ctx)
        try:
            positional, keywords = prepared.bind(arguments, tool_ctx)
            return to_jsonable_python(prepared.function(*positional, **keywords)), None
        except Exception as exc:  # a tool's failure goes back to the model as data
            error = {"type": type(exc).__name__, "message": f"{type(exc).__name__}: {exc}"}
            ctx.logger.warning("tool %s attempt %d failed: %s", tool.tool_name, attempt, exc)
        finally:
            _current.reset(token)
        if attempt < policy.max_attempts:
            time.sleep(backoff(policy, ctx.run_id, node, None, attempt))
    return None, error
