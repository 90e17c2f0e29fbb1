"""One model node's requests, tokens and cost, at least, as expected and at most, before
the run (``keel estimate``; the rules are listed in ``keel.llm.estimate``).

Each bound is a tally of requests: how many, and each one's input and output tokens.
Costs are priced request by request (a price can depend on a request's size) and
summed; ``expected`` weighs each request by how likely it is, so its tallies are
fractional until they are rounded at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from keel.llm.budget import nanos
from keel.llm.calibration import Observed
from keel.llm.estimate_runs import Chance, known_value
from keel.llm.estimate_sizes import Context, RequestSize, item_size, request_size, value_size
from keel.llm.pricing import Price, cost_nanos
from keel.llm.tokens import MESSAGE_OVERHEAD
from keel.llm.types import Usage
from keel.spec.model import AgentNode, LlmNode

#: the share of ``max_tokens`` a request is expected to write, when no calls are recorded
EXPECTED_OUTPUT_SHARE = 0.5
#: items expected of a map whose list is not known and which has no ``max_items``
ASSUMED_ITEMS = 10
#: tokens a re-ask adds besides the answer before it: the feedback with the validation
#: error (``keel.llm.structured.feedback``)
REASK_FEEDBACK_TOKENS = 100
#: tokens of a tool's result an agent's turn adds to the conversation
TOOL_RESULT_TOKENS = 200
#: how much longer than the answer an output is when written back as JSON (the spaces
#: ``json.dumps`` puts after ``:`` and ``,``)
JSON_MARGIN = 1.1
#: nano-dollars per dollar
_NANOS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Bounds:
    """The least, the expected and the most; ``max`` None: unbounded."""

    min: int
    #: requests may be expected a fraction of a time (a branch taken in half the runs)
    expected: float
    max: int | None

    def __add__(self, other: Bounds) -> Bounds:
        most = None if self.max is None or other.max is None else self.max + other.max
        return Bounds(self.min + other.min, self.expected + other.expected, most)

    def capped(self, cap: int) -> Bounds:
        most = cap if self.max is None else min(self.max, cap)
        return Bounds(min(self.min, cap), min(self.expected, cap), most)


ZERO = Bounds(0, 0, 0)


@dataclass(frozen=True, slots=True)
class NodeEstimate:
    id: str
    kind: Literal["llm", "agent"]
    provider: str
    model: str
    chance: Chance
    #: model requests (an agent's turns)
    calls: Bounds
    input_tokens: Bounds
    output_tokens: Bounds
    #: nano-dollars; None: the model's price is unknown
    cost: Bounds | None
    #: a map's items (None: not a map)
    items: Bounds | None = None
    #: why the most is unbounded (None: it is bounded)
    unbounded: str | None = None
    #: recorded calls the expected values were calibrated from (0: none)
    calibrated: int = 0
    notes: tuple[str, ...] = ()


@dataclass
class _Tally:
    price: Price | None
    calls: float = 0.0
    input: float = 0.0
    output: float = 0.0
    cost: float = 0.0

    def add(self, times: float, input_tokens: int, output_tokens: int) -> None:
        if times <= 0:
            return
        self.calls += times
        self.input += times * input_tokens
        self.output += times * output_tokens
        if self.price is not None:
            usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
            self.cost += times * cost_nanos(usage, self.price)[0]


@dataclass
class _Bounds:
    """The three tallies of one node, and what is said about them."""

    price: Price | None
    least: _Tally = field(init=False)
    expected: _Tally = field(init=False)
    most: _Tally = field(init=False)
    #: why a most is unbounded, and which ("calls", "input", "output", "cost")
    unbounded: str | None = None
    endless: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def without_bound(self, why: str, *picks: str) -> None:
        self.unbounded = self.unbounded or why
        self.endless.update(picks or ("calls", "input", "output", "cost"))

    def __post_init__(self) -> None:
        self.least, self.expected, self.most = (_Tally(self.price) for _ in range(3))

    def result(
        self, node: LlmNode | AgentNode, chance: Chance, cap: int | None, **extra: Any
    ) -> NodeEstimate:
        def bounds(pick: str) -> Bounds:
            low, mid = _round(getattr(self.least, pick)), getattr(self.expected, pick)
            high = None if pick in self.endless else _round(getattr(self.most, pick))
            cost_mid = math.ceil(mid - 1e-6)  # not a nano-dollar more for a float's last bit
            if pick == "calls":  # "0.5 requests": a branch taken in half the runs
                calls = round(mid, 1)
                return _ordered(low, int(calls) if calls.is_integer() else calls, high)
            return _ordered(low, cost_mid if pick == "cost" else _round(mid), high)

        cost = None
        if self.price is not None:
            cost = bounds("cost")
            if cap is not None and (cost.max is None or cost.max > cap):
                self.notes.append(f"its cost is capped at ${cap / _NANOS:g} (max_cost)")
                cost = cost.capped(cap)
        return NodeEstimate(
            id=node.id, kind=node.kind, provider=node.provider, model=node.model,
            chance=chance, calls=bounds("calls"), input_tokens=bounds("input"),
            output_tokens=bounds("output"), cost=cost, unbounded=self.unbounded,
            notes=tuple(dict.fromkeys(self.notes)), **extra,
        )  # fmt: skip


def _ordered(low: int, mid: float, high: int | None) -> Bounds:
    """min <= expected <= max, whatever rounding and calibration did."""
    mid = max(low, mid if high is None else min(mid, high))
    return Bounds(low, mid, high)


def _round(value: float) -> int:
    """Half up (``round`` rounds 0.5 to 0: half a request expected is one)."""
    return math.floor(value + 0.5)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(value, high))


def expected_output(node: LlmNode | AgentNode, observed: Observed | None) -> int:
    """Output tokens a request of ``node`` is expected to write: the mean of its recorded
    calls, else ``EXPECTED_OUTPUT_SHARE`` of ``max_tokens``."""
    if observed is not None:
        return _round(_clamp(observed.mean_output, 1, node.max_tokens))
    return max(1, _round(node.max_tokens * EXPECTED_OUTPUT_SHARE))


def known_list(node: LlmNode, run_input: dict[str, Any] | None) -> list[Any] | None:
    """A map's list when it comes from the input (or is written in the spec)."""
    if node.for_each is None:
        return None
    known, listed = known_value(node.for_each, {"input": run_input})
    return listed if known and isinstance(listed, list) else None


def expected_items(node: LlmNode, observed: Observed | None) -> float:
    """Items of a map whose list is not known before the run."""
    if observed is not None:
        return _clamp(observed.items_per_run, 0, node.max_items or math.inf)
    return node.max_items / 2 if node.max_items is not None else float(ASSUMED_ITEMS)


def output_size(
    node: LlmNode | AgentNode, observed: Observed | None, run_input: dict[str, Any] | None
) -> tuple[int, int | None]:
    """Tokens the node's output takes in a prompt that reads it: (expected, most); most
    None: unbounded (a map without ``max_items``)."""
    each = expected_output(node, observed)
    most = node.max_tokens
    if node.output is not None:
        most = math.ceil(most * JSON_MARGIN)
    if not isinstance(node, LlmNode) or node.for_each is None:
        return each, most
    listed = known_list(node, run_input)
    if listed is not None:
        count: float = len(listed)
        top: int | None = len(listed)
    else:
        count, top = expected_items(node, observed), node.max_items
    # a list of answers, written as JSON: each quoted (or spaced), with a separator
    item_most = math.ceil(node.max_tokens * JSON_MARGIN) + 1
    return math.ceil(count * (each + 1)), None if top is None else top * item_most


def llm_node(
    node: LlmNode,
    chance: Chance,
    context: Context,
    run_input: dict[str, Any] | None,
    observed: Observed | None,
    price: Price | None,
    attempts: int,
) -> NodeEstimate:
    """An ``llm`` node: once, or once per item; each re-ask resends the conversation."""
    tally = _Bounds(price)
    variables: dict[str, Any] = {"input": run_input}
    reasks = node.reasks if node.output is not None else 0
    grow = node.max_tokens + REASK_FEEDBACK_TOKENS + 2 * MESSAGE_OVERHEAD
    # each group: a first request and how many times it is made (min, expected, max)
    groups: list[tuple[RequestSize, int, float, int | None]] = []
    items: Bounds | None = None
    listed = known_list(node, run_input)
    if node.for_each is None:
        groups.append((request_size(node, context, variables), 1, 1.0, 1))
    elif listed is not None:
        if node.max_items is not None and len(listed) > node.max_items:
            tally.notes.append(
                f"its list has {len(listed)} items for this input, more than "
                f"max_items={node.max_items}: the node fails without asking"
            )
            listed = []
        groups.extend((request_size(node, context, {**variables, "item": item}), 1, 1.0, 1)
                      for item in listed)  # fmt: skip
        items = Bounds(len(listed), len(listed), len(listed))
    else:
        items, group = _unknown_list(node, context, variables, observed, tally)
        groups.append(group)
    # calibrated: requests per run as recorded (branches, items and re-asks included),
    # unless the input decides them
    per_run = observed is not None and listed is None and chance.runs != "skipped"
    out = expected_output(node, observed)
    for size, least, expected, most in groups:
        sized = size.size
        tally.notes.extend(size.unknown)
        if chance.runs == "always":
            tally.least.add(least, sized.min, 1)
        mean_in = sized.expected
        if observed is not None:
            top = math.inf if sized.max is None else sized.max + reasks * grow
            mean_in = _round(_clamp(observed.mean_input, sized.min, top))
        times = chance.share * expected
        if per_run and observed is not None:
            times = observed.calls_per_run
        elif observed is not None:  # re-asks that happened, per item
            times *= _clamp(observed.calls / observed.items, 1, (reasks + 1) * attempts)
        tally.expected.add(times, mean_in, out)
        if chance.runs == "skipped":
            continue
        if most is None:
            continue  # the map said why
        if sized.max is None:
            tally.without_bound(_unbounded_input(size), "input", "cost")
        for asked in range(reasks + 1):
            top = 0 if sized.max is None else sized.max + asked * grow
            tally.most.add(most * attempts, top, node.max_tokens)
    if items is not None:
        if per_run and observed is not None:
            items = replace(items, expected=_round(observed.items_per_run))
        elif chance.runs != "always":
            items = Bounds(0, _round(items.expected * chance.share), items.max)
        if chance.runs == "skipped":
            items = ZERO
    return tally.result(node, chance, None, items=items,
                        calibrated=observed.calls if observed else 0)  # fmt: skip


def _unbounded_input(size: RequestSize) -> str:
    reads = [note for note in size.unknown if "unbounded" in note]
    return f"its prompt reads a value without a bound ({'; '.join(reads)})"


def _unknown_list(
    node: LlmNode,
    context: Context,
    variables: dict[str, Any],
    observed: Observed | None,
    tally: _Bounds,
) -> tuple[Bounds, tuple[RequestSize, int, float, int | None]]:
    """A map whose list comes from upstream: no item is known, each counts alike."""
    assert node.for_each is not None
    most, expected = node.max_items, expected_items(node, observed)
    if most is None:
        tally.without_bound(
            "for_each has no max_items and its list is not known from the input: set max_items"
        )
    list_size = value_size(node.for_each, context, variables)
    tally.notes.append(f"its list ({node.for_each}): {list_size[2]}")
    item_context = replace(context, item=item_size(list_size[:2], expected))
    size = request_size(node, item_context, variables)
    return Bounds(0, _round(expected), most), (size, 0, expected, most)


def agent_node(
    node: AgentNode,
    chance: Chance,
    context: Context,
    run_input: dict[str, Any] | None,
    observed: Observed | None,
    price: Price | None,
    attempts: int,
) -> NodeEstimate:
    """An agent: turn ``k`` (from 0) sends the first request and ``k`` times the
    previous answer and a tool's result; its cost is at most ``max_cost``."""
    tally = _Bounds(price)
    size = request_size(node, context, {"input": run_input})
    tally.notes.extend(size.unknown)
    sized, out = size.size, expected_output(node, observed)
    grow_most = node.max_tokens + TOOL_RESULT_TOKENS + 2 * MESSAGE_OVERHEAD
    if chance.runs == "always":
        tally.least.add(1, sized.min, 1)
    if observed is not None and chance.runs != "skipped":  # turns per run, as recorded
        top = math.inf if sized.max is None else sized.max + (node.max_turns - 1) * grow_most
        mean_in = _round(_clamp(observed.mean_input, sized.min, top))
        tally.expected.add(observed.calls_per_run, mean_in, out)
    else:
        turns = max(1.0, node.max_turns / 2)
        grow = out + TOOL_RESULT_TOKENS + 2 * MESSAGE_OVERHEAD
        for turn in range(math.ceil(turns)):  # the last turn weighs its fraction
            share = chance.share * min(1.0, turns - turn)
            tally.expected.add(share, sized.expected + turn * grow, out)
    if chance.runs != "skipped":
        if sized.max is None:
            tally.without_bound(_unbounded_input(size), "input", "cost")
        for turn in range(node.max_turns):
            top = 0 if sized.max is None else sized.max + turn * grow_most
            tally.most.add(attempts, top, node.max_tokens)
    cap = nanos(node.max_cost)  # as the step reads it
    return tally.result(node, chance, cap, calibrated=observed.calls if observed else 0)
