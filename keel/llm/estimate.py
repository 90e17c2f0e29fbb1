"""``keel estimate``: what a run of a workflow asks of its models, before it runs: per
``llm`` and ``agent`` node and in total, the requests, input and output tokens and
cost, each as min / expected / max.

- **min**: the least a run that goes to its end costs. Nodes that may be skipped (a
  condition not decided by the input, a branch after one, failure handlers) count as
  skipped, a map's list not known from the input as empty; each request sends only the
  text known before the run (no message overheads) and writes 1 token.
- **expected**: each request writes ``EXPECTED_OUTPUT_SHARE`` of ``max_tokens`` (or, when
  the store has calls of the node, the mean of what they wrote: *calibrated*); a node
  with an undecided condition runs in ``CONDITION_CHANCE`` of the runs; a map has
  ``max_items / 2`` items (or as many as its list from the input has); an agent takes
  ``max_turns / 2`` turns. Calibrated, a node makes as many requests per run as it did
  in the runs read (``keel.llm.calibration``), unless the input decides it.
- **max**: every attempt (``retry.max_attempts``) pays for every request in full:
  ``max_tokens`` of output, and with an output schema each of ``reasks`` re-asks sends the
  conversation so far (each answer and the feedback). An agent takes ``max_turns``
  turns, turn ``k`` (from 0) sending ``k`` earlier answers and tool results more, and
  costs at most ``max_cost``. A map without ``max_items`` whose list is not known from
  the input is **unbounded**. The run's budget (``llm_budget.per_run``) caps the total
  cost unless its ``on_exceed`` is ``ask``.

Values not known before the run (upstream outputs, input not given) are counted by
the rules of ``keel.llm.estimate_sizes``. Tokens are counted by ``keel.llm.tokens``
(chars/4 unless a tokenizer is installed), prices come from ``keel.llm.pricing``; a model
without a price has an unknown cost, left out of the total and said so, never 0.

Pure: spec, input, config and what the store recorded (``keel.llm.calibration``, read
by the caller) in, an ``Estimate`` out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from keel.llm.budget import nanos
from keel.llm.calibration import Calibration
from keel.llm.config import LlmConfig
from keel.llm.estimate_nodes import (
    ASSUMED_ITEMS,
    EXPECTED_OUTPUT_SHARE,
    TOOL_RESULT_TOKENS,
    ZERO,
    Bounds,
    NodeEstimate,
    agent_node,
    llm_node,
    output_size,
)
from keel.llm.estimate_runs import CONDITION_CHANCE, chances
from keel.llm.estimate_sizes import ASSUMED_VALUE_TOKENS, Context
from keel.llm.pricing import Price, price_of
from keel.llm.tokens import token_method
from keel.spec.model import AgentNode, LlmNode, SubworkflowNode, WorkflowSpec
from keel.spec.policies import effective_policies

__all__ = ["Bounds", "Estimate", "NodeEstimate", "PriceUsed", "estimate"]

#: the providers that exist without config (``keel.llm.providers``), by kind
BUILT_IN_PROVIDERS = {"openai": "openai", "anthropic": "anthropic"}
NANOS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class PriceUsed:
    provider: str
    model: str
    #: None: neither config nor genai-prices knows it
    price: Price | None
    #: False: no provider of that name is configured (nor built in)
    provider_known: bool = True


@dataclass(frozen=True, slots=True)
class Estimate:
    workflow: str
    version: str
    input_given: bool
    nodes: tuple[NodeEstimate, ...]
    calls: Bounds
    input_tokens: Bounds
    output_tokens: Bounds
    #: nano-dollars, of the nodes whose price is known (``unpriced`` are left out)
    cost: Bounds
    unpriced: tuple[str, ...]
    #: nano-dollars: the run's budget caps ``cost`` (None: it does not)
    budget_cap: int | None
    prices: tuple[PriceUsed, ...]
    #: how tokens are counted, per model
    token_methods: dict[str, str]
    assumptions: tuple[str, ...]
    calibration: Calibration | None = None

    @property
    def unbounded(self) -> list[tuple[str, str]]:
        return [(node.id, node.unbounded) for node in self.nodes if node.unbounded]


def estimate(
    spec: WorkflowSpec,
    run_input: dict[str, Any] | None,
    config: LlmConfig,
    calibration: Calibration | None = None,
) -> Estimate:
    """The estimate of one run of ``spec`` with ``run_input`` (None: not given; its
    schema's defaults filled in when given)."""
    models = [node for node in spec.nodes if isinstance(node, LlmNode | AgentNode)]
    seen = calibration.nodes if calibration is not None else {}
    outputs = {node.id: output_size(node, seen.get(node.id), run_input) for node in models}
    context = Context(spec, outputs)
    of = chances(spec, run_input)
    prices: dict[tuple[str, str], PriceUsed] = {}
    nodes: list[NodeEstimate] = []
    for node in models:
        key = (node.provider, node.model)
        if key not in prices:
            prices[key] = _price(node.provider, node.model, config)
        observed, chance = seen.get(node.id), of[node.id]
        attempts = effective_policies(node, spec.defaults).retry.max_attempts
        figure = llm_node if isinstance(node, LlmNode) else agent_node
        found = figure(node, chance, context, run_input, observed, prices[key].price,  # type: ignore[arg-type]
                       attempts)  # fmt: skip
        nodes.append(_with_notes(found, node, spec, prices[key]))
    return _totals(spec, run_input, nodes, tuple(prices.values()), calibration)


def _price(provider: str, model: str, config: LlmConfig) -> PriceUsed:
    configured = config.providers.get(provider)
    kind = configured.kind if configured else BUILT_IN_PROVIDERS.get(provider)
    price = price_of(kind or "openai", provider, model, config.prices)
    return PriceUsed(provider, model, price, provider_known=kind is not None)


def _with_notes(
    found: NodeEstimate, node: LlmNode | AgentNode, spec: WorkflowSpec, used: PriceUsed
) -> NodeEstimate:
    notes = list(found.notes)
    if found.chance.why:
        notes.insert(0, f"{found.chance.runs.replace('_', ' ')}: {found.chance.why}")
    if not used.provider_known:
        notes.append(
            f"no provider '{node.provider}' is configured: a run fails unless keel.toml "
            f"defines [llm.providers.{node.provider}]"
        )
    if used.price is None and found.calls.max != 0:
        notes.append(f"no price for {node.provider}:{node.model}: its cost is unknown")
    budget = spec.llm_budget
    if node.degrade_to and budget is not None and budget.on_exceed == "degrade":
        notes.append(f"may switch to {node.degrade_to} when the budget runs out (not counted)")
    return replace(found, notes=tuple(notes))


def _totals(
    spec: WorkflowSpec,
    run_input: dict[str, Any] | None,
    nodes: list[NodeEstimate],
    prices: tuple[PriceUsed, ...],
    calibration: Calibration | None,
) -> Estimate:
    calls = input_tokens = output_tokens = cost = ZERO
    unpriced: list[str] = []
    for node in nodes:
        calls += node.calls
        input_tokens += node.input_tokens
        output_tokens += node.output_tokens
        if node.cost is not None:
            cost += node.cost
        elif node.calls.max != 0:
            unpriced.append(node.id)
    budget, cap = spec.llm_budget, None
    if budget is not None and budget.per_run is not None and budget.on_exceed != "ask":
        cap = nanos(budget.per_run)
        cost = cost.capped(cap)
    return Estimate(
        workflow=spec.name, version=spec.version, input_given=run_input is not None,
        nodes=tuple(nodes), calls=calls, input_tokens=input_tokens,
        output_tokens=output_tokens, cost=cost, unpriced=tuple(unpriced), budget_cap=cap,
        prices=prices, token_methods={node.model: token_method(node.model) for node in nodes},
        assumptions=_assumptions(spec, nodes, cap), calibration=calibration,
    )  # fmt: skip


def _assumptions(spec: WorkflowSpec, nodes: list[NodeEstimate], cap: int | None) -> tuple[str, ...]:
    """The rules the figures rest on, those that apply to this workflow."""
    said = [
        "min: only text known before the run (no message overheads) and 1 output token a "
        "request; nodes that may be skipped count as skipped, a list not known as empty",
        "max: every attempt (retry.max_attempts) pays for every request in full, "
        "max_tokens of output; each re-ask (reasks, with an output schema) sends the "
        "conversation so far",
    ]
    if any(not node.calibrated for node in nodes):
        said.append(
            f"expected output: {EXPECTED_OUTPUT_SHARE:.0%} of max_tokens a request, for "
            "nodes without recorded calls"
        )
    if any(node.calibrated for node in nodes):
        said.append("calibrated: a node's expected requests per run and tokens per "
                    "request are the means of its recorded calls in the runs read")  # fmt: skip
    if any(node.chance.runs == "maybe" for node in nodes):
        said.append(
            f"a node whose condition cannot be decided before the run is expected in "
            f"{CONDITION_CHANCE:.0%} of runs (a branch after it: the same share)"
        )
    if any(node.chance.runs == "on_failure" for node in nodes):
        said.append("a failure handler is expected never to run; max counts it")
    if any("${{" in note for node in nodes for note in node.notes):
        said.append(
            "a value not known before the run counts as the output of the llm or agent "
            f"node it comes from (expected; max_tokens at most), else {ASSUMED_VALUE_TOKENS} "
            "tokens; in min as nothing"
        )
    if any(node.items is not None and node.items.min != node.items.max for node in nodes):
        said.append(
            f"a map's list not known from the input: max_items / 2 items expected "
            f"({ASSUMED_ITEMS} without max_items), 0 in min"
        )
    if any(node.kind == "agent" for node in nodes):
        said.append(
            "agent: 1 / max_turns / 2 / max_turns turns; turn k (from 0) sends the first "
            f"request plus k times (the answer before + a {TOOL_RESULT_TOKENS}-token tool "
            "result); its cost is at most max_cost"
        )
    if any(isinstance(node, SubworkflowNode) for node in spec.nodes):
        said.append("subworkflow nodes are not counted: estimate their workflows too")
    if cap is not None:
        said.append(f"the run's budget (llm_budget.per_run ${Decimal(cap) / NANOS:f}) caps the "
                    "total cost")  # fmt: skip
    elif spec.llm_budget is not None and spec.llm_budget.on_exceed == "ask":
        said.append("llm_budget on_exceed ask: a person may allow more than the budget")
    return tuple(said)
