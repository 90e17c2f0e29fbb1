"""``keel estimate``: min / expected / max requests, tokens and cost per model node and
in total, before a run (``keel.llm.estimate``), and the command that prints it.

The figures are checked against the rules the module states: bounds in order, totals
the sums of the nodes, the most a node can cost from its ``max_tokens``, re-asks and
attempts, maps bounded by ``max_items`` or said to be unbounded, conditions decided by
the input, prices from config and unknown ones said to be unknown."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from keel.cli.app import app
from keel.llm.calibration import Calibration, Observed
from keel.llm.config import LlmConfig, PriceOverride
from keel.llm.estimate import Bounds, Estimate, NodeEstimate, estimate
from keel.llm.estimate_nodes import REASK_FEEDBACK_TOKENS, TOOL_RESULT_TOKENS
from keel.llm.tokens import MESSAGE_OVERHEAD, count_message_tokens, count_tokens
from keel.llm.types import Message
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec

#: dollars per million tokens of the test's model, from config
PRICES = LlmConfig(prices={"test-model": PriceOverride(Decimal("1"), Decimal("3"))})
#: nano-dollars per token at those prices
IN, OUT = 1_000, 3_000
FACTS = {"type": "array", "items": {"type": "string"}}
SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}, "facts": FACTS},
          "required": ["label"]}  # fmt: skip


def llm(node_id: str, prompt: str, max_tokens: int = 100, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "kind": "llm", "model": "test-model", "prompt": prompt,
            "max_tokens": max_tokens, **fields}  # fmt: skip


def workflow(*nodes: dict[str, Any], **fields: Any) -> WorkflowSpec:
    return parse_spec({"name": "w", "nodes": list(nodes), **fields})


#: a chain of llm nodes, a map with max_items, an agent, and a branch with ``when``
MIXED = [
    llm("classify", "Classify: ${{ input.ticket }}", 200, output=SCHEMA,
        system="You sort support tickets."),
    llm("draft", "Reply to ${{ input.ticket }} as ${{ nodes.classify.output.label }}", 400,
        retry={"max_attempts": 2}),
    llm("facts", "Check ${{ item }}", 50, for_each="nodes.classify.output.facts", max_items=8),
    {"id": "research", "kind": "agent", "model": "test-model", "max_tokens": 300,
     "prompt": "Find what ${{ input.ticket }} is about", "max_turns": 6, "max_tool_calls": 5,
     "max_cost": 5.0},
    llm("escalate", "Escalate: ${{ nodes.draft.output }}", 150,
        when='nodes.classify.output.label == "urgent"'),
    llm("after_escalate", "Log ${{ nodes.escalate.output }}", 20),
]  # fmt: skip


def node(result: Estimate, node_id: str) -> NodeEstimate:
    return next(found for found in result.nodes if found.id == node_id)


def in_order(bounds: Bounds) -> bool:
    return bounds.min <= bounds.expected and (bounds.max is None or bounds.expected <= bounds.max)


def total(parts: list[Bounds]) -> Bounds:
    result = Bounds(0, 0, 0)
    for part in parts:
        result += part
    return result


@pytest.mark.parametrize("run_input", [None, {"ticket": "The printer is on fire"}])
def test_every_bound_is_in_order_and_the_totals_are_the_sums(run_input: Any) -> None:
    result = estimate(workflow(*MIXED), run_input, PRICES)

    assert [found.id for found in result.nodes] == [n["id"] for n in MIXED]
    for found in result.nodes:
        for bounds in (found.calls, found.input_tokens, found.output_tokens, found.cost):
            assert bounds is not None
            assert in_order(bounds), (found.id, bounds)
        assert found.unbounded is None
    assert result.calls == total([found.calls for found in result.nodes])
    assert result.input_tokens == total([found.input_tokens for found in result.nodes])
    assert result.output_tokens == total([found.output_tokens for found in result.nodes])
    assert result.cost == total([found.cost for found in result.nodes if found.cost])
    assert result.unbounded == []
    assert result.unpriced == ()
    assert result.token_methods == {"test-model": "chars/4"}


def test_the_most_pays_every_reask_and_every_attempt_in_full() -> None:
    spec = workflow(
        llm("asked", "Say hi", 100, output=SCHEMA, reasks=2, retry={"max_attempts": 3}),
        llm("text", "Say hi", 100, reasks=2, retry={"max_attempts": 3}),
    )
    result = estimate(spec, None, PRICES)

    asked, text = node(result, "asked"), node(result, "text")
    assert asked.calls == Bounds(1, 1, 9)  # (1 + 2 re-asks) x 3 attempts
    assert asked.output_tokens == Bounds(1, 50, 900)
    assert text.calls == Bounds(1, 1, 3)  # no schema: nothing to re-ask
    first = count_message_tokens([Message("user", "Say hi")], "test-model")
    assert text.input_tokens == Bounds(count_tokens("Say hi"), first, 3 * first)
    assert text.cost == Bounds(count_tokens("Say hi") * IN + 1 * OUT,
                               first * IN + 50 * OUT, 3 * (first * IN + 100 * OUT))  # fmt: skip
    # each re-ask sends the conversation so far: every answer before and its feedback
    base = first + count_tokens(json.dumps(SCHEMA))
    grow = 100 + REASK_FEEDBACK_TOKENS + 2 * MESSAGE_OVERHEAD
    assert asked.input_tokens.max == 3 * (base + (base + grow) + (base + 2 * grow))


def test_a_map_is_bounded_by_max_items_or_said_to_be_unbounded() -> None:
    bounded = llm("facts", "Check ${{ item }}", 50, for_each="nodes.classify.output.facts",
                  max_items=8)  # fmt: skip
    open_ended = {**bounded, "id": "open"}
    del open_ended["max_items"]
    spec = workflow(llm("classify", "Classify", 100, output=SCHEMA), bounded, open_ended)
    result = estimate(spec, None, PRICES)

    facts, unbounded = node(result, "facts"), node(result, "open")
    assert facts.items == Bounds(0, 4, 8)
    assert facts.calls == Bounds(0, 4, 8)
    assert facts.output_tokens == Bounds(0, 100, 400)
    assert unbounded.items == Bounds(0, 10, None)
    assert unbounded.calls.max is None
    assert unbounded.cost is not None
    assert unbounded.cost.max is None
    assert "max_items" in (unbounded.unbounded or "")
    assert result.unbounded == [("open", unbounded.unbounded)]
    assert result.calls.max is None
    assert result.cost.max is None


def test_what_reads_an_unbounded_map_is_unbounded_too() -> None:
    spec = workflow(
        llm("classify", "Classify", 100, output=SCHEMA),
        llm("open", "Check ${{ item }}", 50, for_each="nodes.classify.output.facts"),
        llm("summary", "Sum up ${{ nodes.open.output }}", 50),
    )
    summary = node(estimate(spec, None, PRICES), "summary")

    assert summary.input_tokens.max is None
    assert summary.calls.max == 1
    assert "without a bound" in (summary.unbounded or "")


def test_a_list_from_the_input_gives_the_items_and_their_text() -> None:
    spec = workflow(llm("each", "Explain ${{ item }}", 40, for_each="input.tags", max_items=5))

    short = node(estimate(spec, {"tags": ["a", "b"]}, PRICES), "each")
    long = node(estimate(spec, {"tags": ["a" * 400, "b"]}, PRICES), "each")
    unknown = node(estimate(spec, None, PRICES), "each")

    assert short.items == Bounds(2, 2, 2)
    assert short.calls == Bounds(2, 2, 2)
    assert long.input_tokens.min == short.input_tokens.min + count_tokens("a" * 400) - 1
    assert unknown.items == Bounds(0, 3, 5)  # 5 / 2, rounded half up
    too_many = node(estimate(spec, {"tags": list("abcdefg")}, PRICES), "each")
    assert too_many.calls == Bounds(0, 0, 0)
    assert any("more than max_items=5" in note for note in too_many.notes)


def test_a_condition_on_the_input_is_decided_and_one_on_results_may_skip() -> None:
    spec = workflow(
        llm("first", "Hello", 10),
        llm("vip", "Welcome ${{ input.name }}", 10, when='input.tier == "vip"'),
        llm("maybe", "Go on: ${{ nodes.first.output }}", 10, when='nodes.first.output == "go"'),
        llm("then", "And ${{ nodes.maybe.output }}", 10),
        llm("both", "Join ${{ nodes.first.output }} ${{ nodes.maybe.output }}", 10),
    )
    basic = estimate(spec, {"tier": "basic", "name": "Ann"}, PRICES)
    vip = estimate(spec, {"tier": "vip", "name": "Ann"}, PRICES)
    unknown = estimate(spec, None, PRICES)

    assert node(basic, "vip").calls == Bounds(0, 0, 0)
    assert node(basic, "vip").chance.runs == "skipped"
    assert node(vip, "vip").calls == Bounds(1, 1, 1)
    assert node(vip, "vip").chance.runs == "always"
    assert node(unknown, "vip").chance.runs == "maybe"
    for result in (basic, vip, unknown):
        maybe, then = node(result, "maybe"), node(result, "then")
        assert maybe.chance.runs == "maybe"
        assert maybe.calls.min == 0
        assert maybe.calls.max == 1
        assert then.chance.runs == "maybe"
        assert then.calls.min == 0
        assert node(result, "both").chance.runs == "always"  # one parent always runs
        assert maybe.cost is not None
        assert maybe.cost.min == 0


def test_a_failure_handler_is_expected_never_and_counted_at_most_once() -> None:
    spec = workflow(llm("risky", "Try", 10, on_failure="rescue"), llm("rescue", "Help", 10))
    rescue = node(estimate(spec, None, PRICES), "rescue")

    assert rescue.chance.runs == "on_failure"
    assert rescue.calls == Bounds(0, 0, 1)


def test_an_agent_takes_half_its_turns_expected_and_costs_at_most_max_cost() -> None:
    agent = {"id": "agent_loop", "kind": "agent", "model": "test-model", "max_tokens": 1000,
             "prompt": "Work", "max_turns": 10, "max_tool_calls": 20, "max_cost": 0.01}  # fmt: skip
    found = node(estimate(workflow(agent), None, PRICES), "agent_loop")

    assert found.calls == Bounds(1, 5, 10)
    assert found.output_tokens == Bounds(1, 2500, 10_000)
    # turn k sends the first request and k answers and tool results more
    first = count_message_tokens([Message("user", "Work")])
    grow = 1000 + TOOL_RESULT_TOKENS + 2 * MESSAGE_OVERHEAD
    assert found.input_tokens.max == sum(first + turn * grow for turn in range(10))
    assert found.cost is not None
    assert found.cost.max == 10_000_000
    assert any("max_cost" in note for note in found.notes)


def test_prices_come_from_config_and_an_unknown_price_is_said_to_be_unknown() -> None:
    spec = workflow(llm("priced", "Hi", 10), {**llm("local", "Hi", 10), "model": "no-such-model"})
    result = estimate(spec, None, PRICES)

    priced, local = node(result, "priced"), node(result, "local")
    assert priced.cost is not None
    assert priced.cost.max == (count_message_tokens([Message("user", "Hi")]) * IN + 10 * OUT)
    assert local.cost is None
    assert any("no price" in note for note in local.notes)
    assert result.unpriced == ("local",)
    assert result.cost == priced.cost  # the total leaves the unknown out, not as 0
    (used_priced, used_local) = result.prices
    assert used_priced.price is not None
    assert used_priced.price.source == "config"
    assert used_local.price is None


def test_the_runs_budget_caps_the_total_unless_a_person_may_allow_more() -> None:
    nodes = [llm("big", "Hi", 100_000)]
    capped = estimate(workflow(*nodes, llm_budget={"per_run": 0.05}), None, PRICES)
    asked = estimate(workflow(*nodes, llm_budget={"per_run": 0.05, "on_exceed": "ask"}),
                     None, PRICES)  # fmt: skip

    assert capped.cost.max == 50_000_000
    assert capped.budget_cap == 50_000_000
    assert asked.cost.max is not None
    assert asked.cost.max > 50_000_000
    assert asked.budget_cap is None


def test_recorded_calls_calibrate_the_expected_values() -> None:
    spec = workflow(*MIXED)
    observed = Observed(calls=30, input_tokens=30 * 40, output_tokens=30 * 12, items=30, runs=20)
    calibrated = estimate(spec, None, PRICES, Calibration(runs=20, nodes={"draft": observed}))
    plain = estimate(spec, None, PRICES)

    draft = node(calibrated, "draft")
    assert draft.calibrated == 30
    assert draft.output_tokens.expected == round(1.5 * 12)  # 1.5 requests a run, 12 each
    assert draft.calls.expected == 1.5  # 30 calls over 20 runs
    assert draft.input_tokens.expected == 60
    assert node(plain, "draft").output_tokens.expected == 200
    assert node(calibrated, "classify") == node(plain, "classify")
    for found in calibrated.nodes:
        assert in_order(found.calls)
        assert found.cost is not None
        assert in_order(found.cost)


# --- the command ---------------------------------------------------------------------------

FLOW = """
name: tickets
input_schema:
  type: object
  properties:
    ticket: {type: string}
    tags: {type: array, items: {type: string}}
nodes:
  - id: classify
    kind: llm
    model: test-model
    prompt: "Classify: ${{ input.ticket }}"
    max_tokens: 200
    output: {type: object, properties: {label: {type: string}, facts: {type: array}}}
  - id: per_tag
    kind: llm
    model: test-model
    for_each: input.tags
    max_items: 10
    prompt: "Explain ${{ item }}"
    max_tokens: 50
  - id: facts
    kind: llm
    model: test-model
    for_each: nodes.classify.output.facts
    prompt: "Check ${{ item }}"
    max_tokens: 50
  - id: local
    kind: llm
    model: unpriced-model
    when: nodes.classify.output.label == "urgent"
    prompt: "Escalate"
    max_tokens: 30
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with the flow and a price for its model, and no database."""
    (tmp_path / "flow.yaml").write_text(FLOW)
    (tmp_path / "keel.toml").write_text('[llm.prices."test-model"]\ninput = 1\noutput = 3\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def keel(*args: str) -> Result:
    env = {"COLUMNS": "80", "KEEL_DATABASE_URL": None, "KEEL_SERVER_URL": None}
    return CliRunner().invoke(app, ["estimate", *args], env=env)


def test_the_table_fits_80_columns_and_says_what_is_unbounded_and_unknown(folder: Path) -> None:
    result = keel("flow.yaml", "-i", "ticket=Printer on fire", "-i", 'tags=["a", "b"]')

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    text = result.output
    for said in ("requests", "input tokens", "output tokens", "cost (USD)", "total",
                 "counted as chars/4", "test-model $1 in, $3 out per million tokens (config",
                 "unpriced-model unknown", "facts: for_each has no max_items",
                 "cost of local: no price", "assumptions", "calibrated  no"):  # fmt: skip
        assert said in text, said
    per_tag = next(line for line in lines if line.startswith("per_tag "))
    assert "2 / 2 / 2" in per_tag
    assert "∞" in next(line for line in lines if line.startswith("total "))


def test_json_gives_the_same_figures(folder: Path) -> None:
    result = keel("flow.yaml", "--json", "-i", "ticket=x", "-i", 'tags=["a"]')

    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"workflow", "version", "input_given", "nodes", "total",
                         "token_methods", "prices", "unbounded", "assumptions",
                         "calibration"}  # fmt: skip
    assert data["input_given"] is True
    assert data["calibration"] is None
    by_id = {entry["id"]: entry for entry in data["nodes"]}
    assert by_id["per_tag"]["calls"] == {"min": 1, "expected": 1, "max": 1}
    assert by_id["facts"]["calls"]["max"] is None
    assert by_id["local"]["cost_usd"] is None
    assert by_id["local"]["runs"] == "maybe"
    assert data["total"]["cost_leaves_out"] == ["local"]
    assert data["total"]["cost_nanos"]["min"] == sum(
        entry["cost_nanos"]["min"] for entry in data["nodes"] if entry["cost_nanos"]
    )
    assert data["total"]["cost_nanos"]["max"] is None
    assert data["unbounded"] == [{"node": "facts", "reason": by_id["facts"]["unbounded"]}]
    assert {"provider": "openai", "model": "unpriced-model", "known": False} in data["prices"]
    priced = next(p for p in data["prices"] if p["known"])
    assert (priced["input_per_mtok"], priced["output_per_mtok"], priced["source"]) == (
        1.0, 3.0, "config")  # fmt: skip


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["missing.yaml"], "no such file: missing.yaml"),
        (["flow.yaml:other"], "flow.yaml has no workflow 'other' (it has: tickets)"),
        (["flow.yaml", "-i", "tags=3"], "input.tags: 3 is not of type 'array'"),
        (["flow.yaml", "--input", "[1"], "--input is not valid JSON"),
        (["flow.yaml", "--db", "sqlite:///nowhere.db"], "no keel database at nowhere.db"),
    ],
)
def test_bad_input_is_one_clear_message(folder: Path, args: list[str], said: str) -> None:
    result = keel(*args)

    assert result.exit_code == 1
    assert said in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # an exit, not an error raised


def test_a_bad_price_in_config_is_a_clear_message(folder: Path) -> None:
    (folder / "keel.toml").write_text('[llm.prices."test-model"]\ninput = "lots"\n')
    result = keel("flow.yaml")

    assert result.exit_code == 1
    assert "keel.toml" in result.output
    assert "Traceback" not in result.output
