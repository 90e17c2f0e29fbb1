"""A workflow's LLM budget (``llm_budget``) end to end, on an agent loop that would run
forever (the stub asks for one more tool call each turn, each with new arguments): it
stops at the budget (``fail``), pauses for a person who may allow more (``ask``, then
``keel approve --data '{"extra": ...}'``), or goes on with the cheaper model
(``degrade``); ``per_day`` counts every run of the workflow. A real worker on SQLite,
the stub over HTTP, prices from ``keel.toml`` so that the stub's tokens cost money."""

from __future__ import annotations

import json
from typing import Any

from keel.llm.budget import nanos
from keel.llm.stub_replies import Json, Reply, ToolCalls
from keel.runtime.operations.interventions import approve
from tests.llm.agentflows import agent_flow, ran, with_budget
from tests.llm.agentrun import Runner, keel_cli, runner_fixture  # noqa: F401

#: bounds far away: only the budget stops these loops
ENDLESS = {"max_turns": 1000, "max_tool_calls": 10_000, "max_cost": 100.0}
ANSWER = Json({"summary": "dry", "rain": False})


def _endless(runner: Runner, answer_at: int | None = None) -> None:
    """Each request gets one more tool call, for a city not asked for yet; with
    ``answer_at``, the ``answer_at``-th request and those after it get the answer."""

    def reply(request: dict[str, Any]) -> Reply:
        if answer_at is not None and len(runner.stub.requests) >= answer_at:
            return ANSWER
        return ToolCalls((("weather", {"city": f"city {len(request['messages'])}"}),))

    runner.stub.responder = reply


def _spent(runner: Runner, run: str) -> int:
    return sum(spend.cost for spend in runner.store.run_spend(run).values())


def _error(runner: Runner, run: str) -> tuple[str, str]:
    error = runner.node(run).error
    return error.type, error.message


def test_an_endless_loop_stops_at_the_run_s_budget(runner: Runner) -> None:
    _endless(runner)
    spec = with_budget(agent_flow("endless", **ENDLESS).spec, per_run=0.5)
    run = runner.run(spec)
    assert runner.store.get_run(run).status == "failed"
    kind, message = _error(runner, run)
    assert kind == "keel.llm.errors.BudgetExceeded"
    assert "the run's budget" in message
    assert "of $0.5000" in message
    spent = _spent(runner, run)
    assert 0 < spent <= nanos(0.5)
    models = runner.calls(run, "model")
    assert len(models) == len(runner.stub.requests) >= 3
    assert all(call.state == "answered" for call in models)  # the refused one was not sent
    assert len(ran()) == len(models)  # each turn's call ran


def test_with_ask_the_run_waits_for_more_and_goes_on_once_approved(runner: Runner) -> None:
    _endless(runner, answer_at=14)
    flow = agent_flow("asking", **{**ENDLESS, "max_cost": 3.0})
    spec = with_budget(flow.spec, per_run=0.3, on_exceed="ask", assignees=["ops"])
    run = runner.run(spec)
    assert runner.awaiting(run)
    assert runner.store.get_run(run).status == "running"
    asked = len(runner.stub.requests)
    spent = _spent(runner, run)
    assert asked >= 2
    assert 0 < spent <= nanos(0.3)

    listed = keel_cli(runner.db, "approvals", "--run", run, "--json")
    assert listed.exit_code == 0, listed.output
    (waiting,) = json.loads(listed.output)
    assert (waiting["node"], waiting["title"], waiting["assignees"]) == (
        "agent", "LLM budget reached", ["ops"])  # fmt: skip
    shown = waiting["description"]
    assert "the run's budget" in shown
    assert "spent or reserved of $0.3000" in shown
    assert "estimated to need up to $" in shown
    assert waiting["data"]["spent"] == spent
    assert waiting["data"]["limit"] == nanos(0.3)
    # to finish: up to what the node's max_cost still allows (not 1000 turns' worth)
    assert 0 < waiting["data"]["to_finish"] <= nanos(3.0) - spent
    assert waiting["form"]["properties"]["extra"]["default"] > 0
    plain = keel_cli(runner.db, "approvals")
    assert "LLM budget reached" in plain.output
    assert "estimated to need" in plain.output

    # a little more: it goes on, spends it, and asks again
    decided = keel_cli(runner.db, "approve", run, "agent", "--data", '{"extra": 0.2}',
                       "--by", "ann")  # fmt: skip
    assert decided.exit_code == 0, decided.output
    runner.settle(run)
    assert runner.awaiting(run)
    assert len(runner.stub.requests) > asked  # new turns, none asked twice
    assert len(runner.stub.requests) == len(runner.calls(run, "model"))
    assert spent < _spent(runner, run) <= nanos(0.5)
    (waiting,) = json.loads(keel_cli(runner.db, "approvals", "--run", run, "--json").output)
    assert waiting["asked"] == "budget:run:2"
    assert "of $0.5000" in waiting["description"]

    # enough to finish
    approve(runner.store, run, "agent", data={"extra": 5}, by="ann")
    assert runner.settle(run) == "succeeded"
    assert runner.node(run).output == {"summary": "dry", "rain": False}
    assert len(runner.stub.requests) == 14 == len(runner.calls(run, "model"))
    assert len(ran()) == 13  # every call ran once, none again on a resume
    assert len({json.dumps(args) for _, args, _ in ran()}) == 13
    assert runner.node(run).attempt == 3


def test_with_ask_a_refusal_fails_the_run(runner: Runner) -> None:
    _endless(runner)
    spec = with_budget(agent_flow("refused", **ENDLESS).spec, per_run=0.3, on_exceed="ask")
    run = runner.run(spec)
    assert runner.awaiting(run)
    assert keel_cli(runner.db, "reject", run, "agent", "--by", "ann").exit_code == 0
    assert runner.settle(run) == "failed"
    assert _error(runner, run)[0] == "Rejected"


def test_degrade_switches_to_the_cheaper_model_and_says_so(runner: Runner) -> None:
    _endless(runner, answer_at=6)
    flow = agent_flow("degrading", model="stub-large", degrade_to="stub-small", **ENDLESS)
    run = runner.run(with_budget(flow.spec, per_run=3.0, on_exceed="degrade"))
    assert runner.store.get_run(run).status == "succeeded"
    models = [request["model"] for request in runner.stub.requests]
    assert len(models) == 6
    switched = models.index("stub-small")
    assert switched >= 1
    assert models == ["stub-large"] * switched + ["stub-small"] * (6 - switched)
    assert [c.model for c in runner.calls(run, "model")] == models
    assert _spent(runner, run) <= nanos(3.0)
    lines = [line.message for line in runner.store.task_logs(run, node="agent")]
    assert any("budget: switching from stub-large to stub-small" in line for line in lines)


def test_degrade_without_a_cheaper_model_fails(runner: Runner) -> None:
    _endless(runner, answer_at=6)
    flow = agent_flow("no_cheaper", model="stub-large", **ENDLESS)
    run = runner.run(with_budget(flow.spec, per_run=3.0, on_exceed="degrade"))
    assert runner.store.get_run(run).status == "failed"
    kind, message = _error(runner, run)
    assert kind == "keel.llm.errors.BudgetExceeded"
    assert "the run's budget" in message
    assert {request["model"] for request in runner.stub.requests} == {"stub-large"}


def test_a_resumed_attempt_after_degrading_is_served_the_cheaper_model_s_turns(
    runner: Runner,
) -> None:
    """Degraded, then an approved tool ends the attempt: the next attempt rebuilds the
    conversation from the ledger, the cheaper model's turns included, buying none again."""
    flow = agent_flow("degrade_resume", model="stub-large", degrade_to="stub-small", **ENDLESS)
    spec = with_budget(flow.spec, per_run=3.0, on_exceed="degrade")
    calls = [ToolCalls((("weather", {"city": f"city {n}"}),)) for n in range(4)]
    email = ToolCalls((("send_email", {"to": "ann@example.com", "body": "dry"}),))
    runner.stub.script(*calls, email, ANSWER)
    run = runner.run(spec)
    assert runner.awaiting(run)
    before = [request["model"] for request in runner.stub.requests]
    assert before[-1] == "stub-small"
    assert before[0] == "stub-large"
    approve(runner.store, run, "agent", by="ann")
    assert runner.settle(run) == "succeeded"
    assert len(runner.stub.requests) == len(before) + 1  # only the turn after the email
    assert runner.stub.requests[-1]["model"] == "stub-small"
    assert [tool for tool, _, _ in ran()] == ["weather"] * 4 + ["send_email"]


def test_per_day_counts_every_run_of_the_workflow(runner: Runner) -> None:
    flow = agent_flow("daily", **ENDLESS)
    spec = with_budget(flow.spec, per_day=0.5)
    runner.stub.script(ToolCalls((("weather", {"city": "Oslo"}),)), ANSWER)
    first = runner.run(spec)
    assert runner.store.get_run(first).status == "succeeded"
    spent_first = _spent(runner, first)
    assert spent_first > 0

    _endless(runner)
    second = runner.run(spec)
    assert runner.store.get_run(second).status == "failed"
    kind, message = _error(runner, second)
    assert kind == "keel.llm.errors.BudgetExceeded"
    assert "the workflow's budget for today" in message
    assert spent_first + _spent(runner, second) <= nanos(0.5)
    # alone, the second run would have had the whole budget
    assert _spent(runner, second) < nanos(0.5) - spent_first + nanos(0.2)

    # a third run gets what is left, if anything, and stops there too
    third = runner.run(spec)
    assert runner.store.get_run(third).status == "failed"
    runs = (first, second, third)
    assert sum(_spent(runner, run) for run in runs) <= nanos(0.5)
