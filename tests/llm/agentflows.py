"""The tools and workflows of the agent and budget tests: ``@keel.task`` tools that note
each run (its arguments and its idempotency key) in ``RAN``, and ``agent_flow`` to trace
a one-node workflow around a ``keel.llm.agent`` with the options a test wants.

The workflows talk to provider ``local`` (``KEEL_LLM_LOCAL_BASE_URL``: the stub)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import keel
from keel.authoring.workflows import Workflow
from keel.spec import WorkflowSpec, parse_spec

#: each tool run: (tool, arguments, idempotency key)
RAN: list[tuple[str, dict[str, Any], str]] = []
_LOCK = threading.Lock()


def _note(tool: str, **arguments: Any) -> None:
    with _LOCK:
        RAN.append((tool, arguments, keel.context().idempotency_key))


def ran(tool: str | None = None) -> list[tuple[str, dict[str, Any], str]]:
    with _LOCK:
        return [entry for entry in RAN if tool is None or entry[0] == tool]


@keel.task
def weather(city: str, days: int = 1) -> dict[str, Any]:
    """The forecast for a city."""
    _note("weather", city=city, days=days)
    return {"city": city, "days": days, "sky": "rain" if city == "Bergen" else "sun"}


@keel.task
def send_email(to: str, body: str) -> str:
    """Send an email (it goes out: a person approves each)."""
    _note("send_email", to=to, body=body)
    return f"sent to {to}"


@keel.task(retry=keel.RetryPolicy(max_attempts=2, initial_backoff=0))
def broken(reason: str) -> str:
    """A tool that always fails (tried twice)."""
    _note("broken", reason=reason)
    raise RuntimeError(f"broken: {reason}")


class NoSuchOrder(keel.NonRetryable):
    """Asking again will not find it."""


@keel.task(retry=keel.RetryPolicy(max_attempts=3, initial_backoff=0))
def order(number: int) -> dict[str, Any]:
    """An order's status; logs what it looks up."""
    _note("order", number=number)
    keel.context().logger.info("looking up order %d", number)
    if number < 0:
        raise NoSuchOrder(f"no order {number}")
    return {"number": number, "status": "shipped"}


@keel.task
async def rate(currency: str) -> float:
    """An exchange rate (a coroutine: tools may be async)."""
    _note("rate", currency=currency)
    await asyncio.sleep(0)
    return 11.5 if currency == "NOK" else 1.0


@keel.task(timeout=0.2)
def slow(seconds: float) -> str:
    """A tool that takes its time."""
    _note("slow", seconds=seconds)
    time.sleep(seconds)
    return "done"


ANSWER = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "rain": {"type": "boolean"}},
    "required": ["summary", "rain"],
    "additionalProperties": False,
}
TOOLS: tuple[Any, ...] = (weather, keel.llm.tool(send_email, approve=True), broken)
#: a few more, for the tests of how tools run
MORE_TOOLS: tuple[Any, ...] = (order, slow, rate)


def agent_flow(name: str, *, output: Any = ANSWER, **options: Any) -> Workflow[..., Any]:
    """A workflow whose one node ``agent`` asks about ``question`` with ``TOOLS``."""
    settings: dict[str, Any] = {"model": "stub-small", "provider": "local", "max_tokens": 50,
                                "max_turns": 6, "max_tool_calls": 6, "max_cost": 10.0,
                                "tools": TOOLS, **options}  # fmt: skip

    def flow(question: str) -> Any:
        return keel.llm.agent("Question: ${{ q }}", values={"q": question}, output=output,
                              **settings)  # fmt: skip

    flow.__name__ = name
    return keel.workflow(name=name)(flow)


def with_budget(spec: WorkflowSpec, **budget: Any) -> WorkflowSpec:
    """``spec`` with an ``llm_budget`` (``@keel.workflow`` has no option for it)."""
    return parse_spec({**spec.model_dump(mode="json", exclude_none=True), "llm_budget": budget})
