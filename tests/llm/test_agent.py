"""The ``agent`` node end to end: a Python workflow (``keel.llm.agent`` with ``@keel.task``
tools) run by a real worker on SQLite against keel's stub server over HTTP.

Tools run with the model's arguments and their results go back to the model; every turn
and every tool call is in the ledger; a resumed attempt asks the model only for turns no
earlier attempt recorded and runs no recorded tool call again; a tool marked
``approve`` waits for a person's approval of those exact arguments (``keel approvals``,
``keel approve``, ``keel reject``); the bounds (turns, tool calls, repetition, cost)
stop a loop; the model's mistakes (an unknown tool, arguments that do not fit) go back
to it as errors it can act on."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import keel
from keel.engine.state import NodeStatus
from keel.llm.stub_replies import HttpError, Json, Text, ToolCalls
from keel.runtime.operations.interventions import approve
from tests.llm import agentflows
from tests.llm.agentflows import agent_flow, ran
from tests.llm.agentrun import Runner, keel_cli, runner_fixture  # noqa: F401

WEATHER = agent_flow("weather_agent")
ANSWER = Json({"summary": "rain all week", "rain": True})


def _tool_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in request["messages"] if m["role"] == "tool"]


def _said(request: dict[str, Any]) -> list[Any]:
    """What each tool message of a request told the model (its JSON)."""
    return [json.loads(m["content"]) for m in _tool_messages(request)]


def test_tools_run_with_the_model_s_arguments_and_their_results_go_back(runner: Runner) -> None:
    runner.stub.script(
        ToolCalls((("weather", {"city": "Bergen", "days": 2}), ("weather", {"city": "Oslo"}))),
        ANSWER,
    )
    run = runner.run(WEATHER.spec)

    assert runner.store.get_run(run).status == "succeeded"
    assert runner.node(run).output == {"summary": "rain all week", "rain": True}
    assert [(tool, args) for tool, args, _ in ran()] == [
        ("weather", {"city": "Bergen", "days": 2}),
        ("weather", {"city": "Oslo", "days": 1}),  # the parameter's default filled in
    ]
    first, second = runner.stub.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["weather", "send_email", "broken"]
    assert first["tools"][0]["function"]["description"] == "The forecast for a city."
    # the second turn carries the model's calls and each tool's result, by call id
    calls = second["messages"][1]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["weather", "weather"]
    assert [m["tool_call_id"] for m in _tool_messages(second)] == [c["id"] for c in calls]
    assert _said(second) == [
        {"city": "Bergen", "days": 2, "sky": "rain"},
        {"city": "Oslo", "days": 1, "sky": "sun"},
    ]
    # the ledger: two model turns, two tool calls between them, in order
    ledger = runner.calls(run)
    assert [(c.kind, c.state) for c in ledger] == [
        ("model", "answered"), ("tool", "answered"), ("tool", "answered"), ("model", "answered"),
    ]  # fmt: skip
    assert [c.seq for c in ledger] == [0, 1, 2, 3]
    tool = ledger[1]
    assert tool.model == "weather"
    assert tool.request == {"tool": "weather", "arguments": {"city": "Bergen", "days": 2}}
    assert tool.response == {"result": {"city": "Bergen", "days": 2, "sky": "rain"}}
    assert all(c.cost > 0 for c in ledger if c.kind == "model")
    assert all(c.cost == 0 for c in ledger if c.kind == "tool")


def test_a_tool_call_s_idempotency_key_is_its_name_and_canonical_arguments(
    runner: Runner,
) -> None:
    """The same tool with the same arguments, however the model wrote them, has the same
    key (within a run); other arguments or another run give another."""
    runner.stub.script(
        ToolCalls((("weather", '{"city": "Bergen", "days": 2}'),
                   ("weather", '{ "days":2,"city":"Bergen" }'),  # same call, other spelling
                   ("weather", {"city": "Bergen", "days": 3}))),
        ANSWER,
        ToolCalls((("weather", {"days": 2, "city": "Bergen"}),)),
        ANSWER,
    )  # fmt: skip
    first = runner.run(WEATHER.spec)
    second = runner.run(WEATHER.spec)
    keys = [key for _, _, key in ran()]
    assert len(keys) == 4
    assert keys[0] == keys[1] != keys[2]
    assert keys[0].startswith(f"{first}:agent/weather#")
    assert keys[3] == keys[0].replace(first, second)  # another run: another key


def test_a_tool_call_cut_off_by_a_crash_runs_again_under_the_same_key(runner: Runner) -> None:
    """The tool ran but its process died before the ledger recorded its end (made here
    by writing its record back to ``sent``): the next attempt runs it again, with the
    same idempotency key, and the model is not asked again for the turn before it."""
    runner.stub.script(
        ToolCalls((("weather", {"city": "Bergen"}),)),
        ToolCalls((("send_email", {"to": "ann@example.com", "body": "rain"}),)),
        ANSWER,
    )
    run = runner.run(WEATHER.spec)
    assert runner.awaiting(run)
    with sqlite3.connect(runner.db) as db:
        db.execute("UPDATE model_calls SET state = 'sent', response = NULL, ended_at = NULL "
                   "WHERE kind = 'tool' AND run_id = ?", (run,))  # fmt: skip
    approve(runner.store, run, "agent", by="ann")
    assert runner.settle(run) == "succeeded"
    (first, again) = [key for tool, _, key in ran() if tool == "weather"]
    assert first == again
    assert len(runner.stub.requests) == 3  # turns 1 and 2 served, though the tool ran again
    states = [(c.kind, c.model, c.state) for c in runner.calls(run)]
    assert states[:2] == [
        ("model", "stub-small", "answered"),
        ("tool", "weather", "possibly_billed"),
    ]
    assert ("tool", "weather", "answered") in states[2:]


def _crash_after_two_turns(runner: Runner) -> None:
    """Turn 1 calls weather, turn 2 sends an email (which waits for approval: the
    attempt ends there), turn 3 answers."""
    runner.stub.script(
        ToolCalls((("weather", {"city": "Bergen"}),)),
        ToolCalls((("send_email", {"to": "ann@example.com", "body": "rain"}),)),
        ANSWER,
    )


def test_a_resumed_attempt_asks_the_model_only_for_the_turns_not_recorded(
    runner: Runner,
) -> None:
    _crash_after_two_turns(runner)
    run = runner.run(WEATHER.spec)
    assert runner.awaiting(run)
    assert len(runner.stub.requests) == 2
    assert [tool for tool, _, _ in ran()] == ["weather"]

    approve(runner.store, run, "agent", by="ann")
    assert runner.settle(run) == "succeeded"
    # the earlier turns were served from the ledger; only the third was asked for
    assert len(runner.stub.requests) == 3
    assert [tool for tool, _, _ in ran()] == ["weather", "send_email"]  # weather ran once
    third = runner.stub.requests[2]
    assert _said(third) == [{"city": "Bergen", "days": 1, "sky": "rain"}, "sent to ann@example.com"]
    ledger = runner.calls(run)
    assert [(c.kind, c.attempt) for c in ledger] == [
        ("model", 1), ("tool", 1), ("model", 1), ("tool", 2), ("model", 2),
    ]  # fmt: skip
    assert runner.node(run).attempt == 2


def test_an_attempt_that_failed_mid_loop_resumes_from_the_last_recorded_turn(
    runner: Runner,
) -> None:
    """The provider fails the third turn (a 503): the attempt fails and is retried; the
    retry is served the two turns and the tool call already recorded."""
    flow = agent_flow("retried_agent", retry=keel.RetryPolicy(max_attempts=2, initial_backoff=0))
    runner.stub.script(
        ToolCalls((("weather", {"city": "Bergen"}),)),
        ToolCalls((("weather", {"city": "Oslo"}),)),
        HttpError(status=503, retry_after="0"),
        ANSWER,
    )
    run = runner.run(flow.spec)
    assert runner.store.get_run(run).status == "succeeded"
    assert len(runner.stub.requests) == 4  # 2 turns, the failed one, and it again
    assert runner.stub.requests[3] == runner.stub.requests[2]
    assert [args["city"] for _, args, _ in ran()] == ["Bergen", "Oslo"]
    states = [(c.kind, c.state, c.attempt) for c in runner.calls(run)]
    assert states == [
        ("model", "answered", 1), ("tool", "answered", 1), ("model", "answered", 1),
        ("tool", "answered", 1), ("model", "failed", 1), ("model", "answered", 2),
    ]  # fmt: skip


def test_an_approved_tool_runs_with_exactly_the_approved_arguments(runner: Runner) -> None:
    runner.stub.script(
        ToolCalls((("send_email", {"to": "ann@example.com", "body": "rain"}),)),
        ToolCalls((("send_email", {"to": "bo@example.com", "body": "rain"}),)),
        ANSWER,
    )
    run = runner.run(WEATHER.spec)
    assert runner.awaiting(run)
    assert runner.store.get_run(run).status == "running"
    assert ran() == []  # nothing sent before a person said so

    listed = keel_cli(runner.db, "approvals", "--run", run, "--json")
    assert listed.exit_code == 0, listed.output
    (waiting,) = json.loads(listed.output)
    assert (waiting["node"], waiting["title"]) == ("agent", "Allow send_email?")
    assert "ann@example.com" in waiting["description"]
    assert waiting["data"] == {"tool": "send_email",
                               "arguments": {"to": "ann@example.com", "body": "rain"}}  # fmt: skip

    decided = keel_cli(runner.db, "approve", run, "agent", "--by", "ann")
    assert decided.exit_code == 0, decided.output
    runner.settle(run)
    assert [args for _, args, _ in ran()] == [{"to": "ann@example.com", "body": "rain"}]
    # the model then asks to email someone else: that call needs its own approval
    assert runner.awaiting(run)
    (waiting,) = json.loads(keel_cli(runner.db, "approvals", "--run", run, "--json").output)
    assert waiting["data"]["arguments"]["to"] == "bo@example.com"
    assert keel_cli(runner.db, "approve", run, "agent", "--by", "ann").exit_code == 0
    assert runner.settle(run) == "succeeded"
    assert [args["to"] for _, args, _ in ran()] == ["ann@example.com", "bo@example.com"]
    assert len(runner.stub.requests) == 3


def test_a_rejected_tool_call_fails_the_node(runner: Runner) -> None:
    runner.stub.script(ToolCalls((("send_email", {"to": "all@example.com", "body": "spam"}),)))
    run = runner.run(WEATHER.spec)
    assert runner.awaiting(run)
    rejected = keel_cli(runner.db, "reject", run, "agent", "--comment", "no spam", "--by", "ann")
    assert rejected.exit_code == 0, rejected.output
    assert runner.settle(run) == "failed"
    node = runner.node(run)
    assert node.status is NodeStatus.FAILED
    assert node.error.type == "Rejected"
    assert "no spam" in node.error.message
    assert ran() == []
    assert len(runner.stub.requests) == 1


def _always_a_new_call(runner: Runner) -> None:
    """The model asks for one more forecast each turn, for a city it has not asked for."""
    runner.stub.responder = lambda request: ToolCalls(
        (("weather", {"city": f"city {len(request['messages'])}"}),)
    )


def _failure(runner: Runner, run: str) -> tuple[str, str]:
    assert runner.store.get_run(run).status == "failed"
    error = runner.node(run).error
    return error.type, error.message


def test_max_turns_stops_the_loop(runner: Runner) -> None:
    _always_a_new_call(runner)
    run = runner.run(agent_flow("turns", max_turns=3, max_tool_calls=100).spec)
    kind, message = _failure(runner, run)
    assert kind == "keel.llm.errors.AgentStopped"
    assert "max_turns=3" in message
    assert len(runner.stub.requests) == 3
    assert runner.node(run).attempt == 1  # a bound is not retried


def test_max_tool_calls_stops_the_loop(runner: Runner) -> None:
    _always_a_new_call(runner)
    run = runner.run(agent_flow("tool_calls", max_turns=10, max_tool_calls=2).spec)
    kind, message = _failure(runner, run)
    assert kind == "keel.llm.errors.AgentStopped"
    assert "max_tool_calls=2" in message
    assert len(ran()) == 2
    assert len(runner.stub.requests) == 3


def test_the_same_call_asked_for_again_and_again_stops_the_loop(runner: Runner) -> None:
    runner.stub.responder = lambda request: ToolCalls((("weather", {"city": "Bergen"}),))
    run = runner.run(agent_flow("repeats", max_turns=10, max_tool_calls=10, repeat_limit=3).spec)
    kind, message = _failure(runner, run)
    assert kind == "keel.llm.errors.AgentStopped"
    assert "3 times in a row" in message
    assert "weather" in message
    assert len(ran()) == 2  # the third same call is not run


def test_max_cost_stops_the_loop(runner: Runner) -> None:
    _always_a_new_call(runner)
    run = runner.run(agent_flow("costly", max_turns=50, max_tool_calls=50, max_cost=0.5).spec)
    kind, message = _failure(runner, run)
    assert kind == "keel.llm.errors.BudgetExceeded"
    assert "max_cost of $0.5000" in message
    spent = sum(c.cost for c in runner.calls(run))
    assert 0 < spent <= 500_000_000  # nano-dollars: never past it
    assert len(runner.stub.requests) >= 2


def test_the_model_s_mistakes_go_back_to_it_as_errors(runner: Runner) -> None:
    runner.stub.script(
        ToolCalls((("forecast", {"city": "Bergen"}),  # no such tool
                   ("weather", '{"city": "Bergen"'),  # not JSON
                   ("weather", {"town": "Bergen"}),  # not the tool's parameters
                   ("weather", {"city": "Bergen", "days": "two"}),
                   ("broken", {"reason": "disk full"}))),  # the tool fails each attempt
        ANSWER,
    )  # fmt: skip
    run = runner.run(WEATHER.spec)
    assert runner.store.get_run(run).status == "succeeded"
    said = _said(runner.stub.requests[1])
    assert said[0] == {"error": "there is no tool 'forecast' (tools: weather, send_email, broken)"}
    assert said[1]["error"].startswith("the arguments are not valid JSON")
    assert said[2]["error"].startswith("the arguments do not fit the tool's parameters")
    assert "'town' was unexpected" in said[2]["error"]
    assert "'city' is a required" in said[2]["error"]
    assert said[3]["error"].startswith("the arguments do not fit the tool's parameters")
    assert said[4] == {"error": "RuntimeError: broken: disk full"}
    assert [tool for tool, _, _ in ran()] == ["broken", "broken"]  # its two attempts
    tools = runner.calls(run, "tool")
    assert [(c.model, c.state) for c in tools] == [("broken", "failed")]


def test_a_text_answer_without_a_schema_is_the_output(runner: Runner) -> None:
    runner.stub.script(ToolCalls((("weather", {"city": "Oslo"}),)), Text("Sunny in Oslo."))
    run = runner.run(agent_flow("texter", output=None).spec)
    assert runner.node(run).output == "Sunny in Oslo."


def test_an_answer_that_does_not_fit_is_asked_again_within_max_turns(runner: Runner) -> None:
    runner.stub.script(Json({"summary": "rain"}), ANSWER)
    run = runner.run(WEATHER.spec)
    assert runner.node(run).output == {"summary": "rain all week", "rain": True}
    feedback = runner.stub.requests[1]["messages"][-1]
    assert feedback["role"] == "user"
    assert "rain" in feedback["content"]


MORE = agent_flow("more_tools", tools=agentflows.MORE_TOOLS)


def test_a_tool_runs_with_its_task_s_retry_policy_and_timeout(runner: Runner) -> None:
    runner.stub.script(
        ToolCalls((("order", {"number": -1}), ("slow", {"seconds": 3}), ("order", {"number": 7}),
                   ("rate", {"currency": "NOK"}))),
        ANSWER,
    )  # fmt: skip
    run = runner.run(MORE.spec)
    assert runner.store.get_run(run).status == "succeeded"
    said = _said(runner.stub.requests[1])
    assert said[0] == {"error": "NoSuchOrder: no order -1"}  # not retried: NonRetryable
    assert said[1]["error"].startswith("TimeoutError: the attempt took longer than 0.2 s")
    assert said[2] == {"number": 7, "status": "shipped"}
    assert said[3] == 11.5
    assert [tool for tool, _, _ in ran()] == ["order", "slow", "order", "rate"]
    # what a tool logs is kept with its agent's attempt
    lines = [line.message for line in runner.store.task_logs(run, node="agent")]
    assert "looking up order 7" in lines


def test_a_failed_tool_call_is_not_run_again_by_a_resumed_attempt(runner: Runner) -> None:
    runner.stub.script(
        ToolCalls((("broken", {"reason": "disk full"}),)),
        ToolCalls((("send_email", {"to": "ann@example.com", "body": "the disk is full"}),)),
        ANSWER,
    )
    run = runner.run(WEATHER.spec)
    assert runner.awaiting(run)
    approve(runner.store, run, "agent", by="ann")
    assert runner.settle(run) == "succeeded"
    assert [tool for tool, _, _ in ran()] == ["broken", "broken", "send_email"]
    assert len(runner.stub.requests) == 3
    assert _said(runner.stub.requests[2])[0] == {"error": "RuntimeError: broken: disk full"}


def test_a_tool_this_worker_cannot_run_fails_the_node_before_any_request(
    runner: Runner,
) -> None:
    missing = {"task": "tests.llm.never_imported:lookup", "parameters": {"type": "object"}}
    run = runner.run(agent_flow("missing_tool", tools=(missing,)).spec)
    kind, message = _failure(runner, run)
    assert kind == "keel.llm.errors.ToolUnavailableError"
    assert message.startswith("tool 'lookup': ")
    assert runner.stub.requests == []


def test_keel_llm_agent_stays_the_function_once_the_loop_is_imported() -> None:
    import keel.llm.agent_loop

    assert callable(keel.llm.agent)
    assert keel.llm.agent.__module__ == "keel.llm.authoring"
