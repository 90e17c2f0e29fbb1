"""One tool call an agent's model asked for: checked, approved if the tool says so, run
as its keel task (with the task's retry policy and timeout), and recorded in the ledger
(kind ``tool``) before and after it runs.

What the model is told is always data: the tool's result, or an error it can act on (an
unknown tool, arguments that are not JSON or do not fit the tool's parameters, a tool
that failed every attempt). Only a call that needs a person's approval ends the attempt.

Invariants: a call is identified by its tool's name and its canonical arguments (its
``mark``), however the model spelled them; a call recorded by an earlier attempt, ended
or failed, is served from the ledger and never run again; a call still ``sent`` when its
attempt stopped (the process died while the tool ran) runs again, under the same
idempotency key, so the outside world can drop the duplicate.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from keel.engine.backoff import backoff
from keel.engine.events import ErrorInfo
from keel.errors import ApprovalNeeded
from keel.llm.errors import ToolUnavailableError
from keel.llm.ledger import CallBook
from keel.llm.types import ToolCall
from keel.runtime.execution.context import StepContext, bound_logger
from keel.runtime.execution.invoke import Invocation, Outcome, TaskCatalog, timed_out
from keel.spec.canonical import canonical_json
from keel.spec.model import AgentTool
from keel.spec.policies import RetryPolicy
from keel.store.model_calls import CallEnded

#: the tools' tasks: ``@keel.task`` functions of modules this process imported
TOOLS = TaskCatalog()
#: problems with a call's arguments told to the model, at most
_PROBLEMS = 5


@dataclass(frozen=True, slots=True)
class ToolContext(StepContext):
    """A tool call's context: its node is ``<agent>/<tool>#<mark>`` and its attempt the
    tool's own try, so its idempotency key is the call's; what it logs goes with the
    agent's attempt (``keel logs RUN AGENT``), which is the one the worker runs."""

    agent_node: str = ""
    agent_attempt: int = 0

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        return bound_logger(self.run_id, self.agent_node, self.agent_attempt, self.item)


def signature(call: ToolCall) -> str:
    """The call as its tool's name and canonical arguments (as written, if not JSON)."""
    try:
        arguments = canonical_json(json.loads(call.arguments or "{}"))
    except ValueError:
        arguments = call.arguments
    return f"{call.name}\n{arguments}"


def check_tools(tools: dict[str, AgentTool]) -> None:
    """Fail before the first request when a tool's task cannot run here: better than
    paying for turns and then finding the tool missing."""
    for name, tool in tools.items():
        refused = TOOLS.refusal(tool.task)
        if refused is not None and refused.error is not None:
            raise ToolUnavailableError(f"tool '{name}': {refused.error.message}")


def description(tool: AgentTool) -> str:
    """The tool's description, else the first paragraph of its function's docstring."""
    if tool.description:
        return tool.description
    try:
        function = TOOLS.get(tool.task).function
    except Exception:  # a tool that cannot load is reported by check_tools
        return ""
    return (function.__doc__ or "").strip().split("\n\n")[0]


def approval_key(name: str, mark: str) -> str:
    return f"tool:{name}:{mark[:16]}"


def tool_result(
    tools: dict[str, AgentTool],
    call: ToolCall,
    ctx: StepContext,
    book: CallBook,
    approvals: list[dict[str, Any]],
) -> Any:
    """What the model is told the call gave (see the module's docstring)."""
    tool = tools.get(call.name)
    if tool is None:
        return {"error": f"there is no tool '{call.name}' (tools: {', '.join(tools)})"}
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError as exc:
        return {"error": f"the arguments are not valid JSON: {exc}"}
    problems = _problems(tool, arguments)
    if problems:
        return {"error": f"the arguments do not fit the tool's parameters: {problems}"}
    mark = hashlib.sha256(signature(call).encode()).hexdigest()
    recorded = _recorded(book, mark)
    if recorded is not None:
        return recorded
    if tool.approve and not any(a.get("key") == approval_key(call.name, mark) for a in approvals):
        shown = json.dumps(arguments, ensure_ascii=False)
        raise ApprovalNeeded(
            f"Allow {call.name}?", key=approval_key(call.name, mark),
            description=f"The agent '{ctx.node}' wants to call {call.name} with {shown}",
            data={"tool": call.name, "arguments": arguments},
        )  # fmt: skip
    request = {"tool": call.name, "arguments": arguments}
    sent = book.send("tool", mark, "tool", call.name, request, 0, None)
    assert isinstance(sent, str)  # no limits: never refused
    started = time.monotonic()
    outcome = _run(tool, arguments, ctx, mark)
    error = None
    if outcome.error is not None:
        bare = outcome.error.type.rpartition(".")[2]
        error = {"type": outcome.error.type, "message": f"{bare}: {outcome.error.message}"}
    book.end(CallEnded(id=sent, state="answered" if error is None else "failed",
                       response=None if error else {"result": outcome.output}, error=error,
                       latency=time.monotonic() - started, at=time.time()))  # fmt: skip
    return outcome.output if error is None else {"error": error["message"]}


def _problems(tool: AgentTool, arguments: Any) -> str:
    validator = Draft202012Validator(dict(tool.parameters))
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    said = [
        (f"{'.'.join(map(str, e.absolute_path))}: " if e.absolute_path else "") + e.message
        for e in errors[:_PROBLEMS]
    ]
    return "; ".join(said)


def _recorded(book: CallBook, mark: str) -> Any:
    """What an earlier attempt recorded for this call (its result, or the error the
    model was told), once per recorded call; None if there is none to serve."""
    for call in book.calls:
        if (call.kind == "tool" and call.fingerprint == mark and call.id not in book.served
                and call.state in ("answered", "failed")):  # fmt: skip
            book.served.add(call.id)
            if call.state == "answered":
                return (call.response or {}).get("result")
            return {"error": (call.error or {}).get("message", "the tool failed")}
    return None


def _run(tool: AgentTool, arguments: dict[str, Any], ctx: StepContext, mark: str) -> Outcome:
    """The tool's task run with its retry policy (a task without one is tried once, as
    a task node is) and its timeout; the outcome of its last try."""
    policy = tool.retry or RetryPolicy()
    node = f"{ctx.node}/{tool.tool_name}#{mark[:12]}"
    outcome = Outcome()
    for attempt in range(1, policy.max_attempts + 1):
        tool_ctx = ToolContext(ctx.run_id, ctx.workflow, node, attempt, None, ctx.span,
                               agent_node=ctx.node, agent_attempt=ctx.attempt)  # fmt: skip
        invocation = Invocation(TOOLS, tool.task, arguments, tool_ctx, policy)
        outcome = _attempt(invocation, tool.timeout, policy)
        if outcome.asks is not None:  # a tool cannot stop its agent to ask a person
            message = "the tool asked for a person's approval, which a tool cannot ask for"
            return Outcome(error=ErrorInfo(type="ApprovalNeeded", message=message))
        if outcome.error is None:
            return outcome
        ctx.logger.warning("tool %s try %d failed: %s", tool.tool_name, attempt,
                           outcome.error.message)  # fmt: skip
        if not outcome.error.retryable or attempt == policy.max_attempts:
            break
        wait = backoff(policy, ctx.run_id, node, None, attempt)
        time.sleep(max(wait, min(outcome.error.retry_after or 0.0, policy.max_backoff)))
    return outcome


def _attempt(invocation: Invocation, timeout: float | None, policy: RetryPolicy) -> Outcome:
    """One try, stopped waiting for at ``timeout`` (a thread cannot be killed: a tool
    still running then is abandoned, and its result discarded)."""
    if invocation.is_async():
        return asyncio.run(invocation.run_async(timeout))
    if timeout is None:
        return invocation.run()
    done: list[Outcome] = []
    context = contextvars.copy_context()
    thread = threading.Thread(target=lambda: done.append(context.run(invocation.run)),
                              name=f"keel-tool-{invocation.task}", daemon=True)  # fmt: skip
    thread.start()
    thread.join(timeout)
    return done[0] if done else timed_out(timeout, policy, thread=True)
