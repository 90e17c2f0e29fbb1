"""A run's LLM ledger as people and programs read it: per node (and the run) the calls,
tokens and money, which calls are possibly billed or still in flight, which had their
usage estimated; each call on its own; and a workflow's spend per model. ``keel show``,
``keel calls``, ``GET /runs/{id}/llm``, ``GET /llm/spend`` and the dashboard's run page
all read these documents.

Money is kept in integer nano-dollars (``keel.store.model_calls``); a document gives it
twice: ``*_nanos`` (the integer, exact) and the same amount as a decimal string of
dollars (``"0.000042000"``: exact too, never a float). ``dollars`` writes it for people.

A node's cost counts a call still in flight at its reservation (the most it may cost),
as a budget does; a possibly billed call is charged its reservation for good: the
process that sent it died before the answer was recorded, so the provider may have
answered and billed it, and no one knows the usage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from keel.engine.plan import Plan
from keel.errors import NodeNotFoundError
from keel.store.model_calls import NANOS, CallSums, ModelCall, Spend
from keel.store.protocol import Store
from keel.store.records import RunRecord

#: a run's call sums by (node, item, kind, model, state), as ``Store.run_call_sums``
RunSums = Mapping[tuple[str, int | None, str, str, str], CallSums]


def exact_dollars(nanos: int) -> str:
    """Nano-dollars as a decimal string of dollars, exact: ``"0.000042000"``."""
    return f"{Decimal(nanos) / NANOS:.9f}"


def dollars(nanos: int) -> str:
    """Nano-dollars as a person reads them: ``$1,234.56``, ``$0.0123``, and below a
    cent enough places for two significant digits (``$0.000042``), so a cheap call
    never shows as ``$0.0000``."""
    value = Decimal(nanos) / NANOS
    if round(value, 4) >= 100:
        return f"${value:,.2f}"
    if value == 0 or value >= Decimal("0.01"):
        return f"${value:.4f}" if value else "$0"
    places = 4
    while places < 9 and value < Decimal(10) ** (1 - places):
        places += 1
    return f"${value:.{places}f}"


@dataclass(slots=True)
class Tally:
    """Calls added up by state (one node, one run, one workflow and model)."""

    model_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost: int = 0
    answered: int = 0
    failed: int = 0
    possibly_billed: int = 0
    in_flight: int = 0
    #: nano-dollars of the possibly billed calls (their reservations) and of the calls
    #: in flight (reserved: what they may cost at most)
    possibly_billed_cost: int = 0
    in_flight_cost: int = 0
    estimated: int = 0

    def add(self, kind: str, state: str, sums: CallSums) -> None:
        if kind == "tool":
            self.tool_calls += sums.calls
        else:
            self.model_calls += sums.calls
        self.input_tokens += sums.input_tokens
        self.output_tokens += sums.output_tokens
        self.cached_input_tokens += sums.cached_input_tokens
        self.reasoning_tokens += sums.reasoning_tokens
        self.cost += sums.cost
        self.estimated += sums.estimated
        if state == "sent":
            self.in_flight += sums.calls
            self.in_flight_cost += sums.cost
        elif state == "possibly_billed":
            self.possibly_billed += sums.calls
            self.possibly_billed_cost += sums.cost
        elif state == "failed":
            self.failed += sums.calls
        else:
            self.answered += sums.calls

    def document(self) -> dict[str, Any]:
        return {
            "calls": self.model_calls + self.tool_calls, "model_calls": self.model_calls,
            "tool_calls": self.tool_calls, "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens, "cached_input_tokens": self.cached_input_tokens,
            "reasoning_tokens": self.reasoning_tokens, "cost_nanos": self.cost,
            "cost": exact_dollars(self.cost), "answered": self.answered, "failed": self.failed,
            "possibly_billed": self.possibly_billed,
            "possibly_billed_cost_nanos": self.possibly_billed_cost,
            "in_flight": self.in_flight, "in_flight_cost_nanos": self.in_flight_cost,
            "estimated": self.estimated,
        }  # fmt: skip


def ledger_document(sums: RunSums, order: Sequence[str] = ()) -> dict[str, Any] | None:
    """A run's ledger from its call sums: ``nodes`` (in ``order``, the plan's; others
    after, by name), each a ``Tally`` document with its ``node``, its ``models`` and
    for a map's calls how many ``items`` made some (None: a whole node); and the
    run's ``total``. None when the run made no call."""
    if not sums:
        return None
    nodes: dict[str, Tally] = {}
    models: dict[str, set[str]] = {}
    items: dict[str, set[int]] = {}
    total = Tally()
    for (node, item, kind, model, state), found in sums.items():
        nodes.setdefault(node, Tally()).add(kind, state, found)
        total.add(kind, state, found)
        if kind == "model":
            models.setdefault(node, set()).add(model)
        if item is not None:
            items.setdefault(node, set()).add(item)
    rank = {node: index for index, node in enumerate(order)}
    named = sorted(nodes, key=lambda node: (rank.get(node, len(rank)), node))
    return {
        "nodes": [{"node": node, "items": len(items[node]) if node in items else None,
                   "models": sorted(models.get(node, ())), **nodes[node].document()}
                  for node in named],
        "total": total.document(),
    }  # fmt: skip


def call_document(call: ModelCall, *, full: bool = False) -> dict[str, Any]:
    """One call: where it was made, how it ended, its usage, cost and latency; with
    ``full``, what was sent and answered too (they may be long: a prompt, a reply)."""
    doc: dict[str, Any] = {
        "id": call.id, "node": call.node, "item": call.item, "attempt": call.attempt,
        "seq": call.seq, "kind": call.kind, "provider": call.provider, "model": call.model,
        "state": call.state, "finish_reason": call.finish_reason,
        "input_tokens": call.input_tokens, "output_tokens": call.output_tokens,
        "cached_input_tokens": call.cached_input_tokens,
        "reasoning_tokens": call.reasoning_tokens, "usage_reported": call.usage_reported,
        "cost_nanos": call.charged, "cost": exact_dollars(call.charged),
        "reserved_nanos": call.reserved, "price_source": call.price_source,
        "latency": call.latency, "sent_at": call.sent_at, "ended_at": call.ended_at,
        "error": call.error,
    }  # fmt: skip
    if full:
        doc.update(fingerprint=call.fingerprint, request=call.request, response=call.response)
    return doc


def calls_document(
    run_id: str,
    workflow: str,
    calls: Iterable[ModelCall],
    sums: RunSums,
    order: Sequence[str] = (),
    *,
    full: bool = False,
) -> dict[str, Any]:
    """The run's calls (of one node when the caller read only those) in the order they
    were made per node and item, with the run's whole ledger (``ledger_document``;
    None: no calls)."""
    return {"run_id": run_id, "workflow": workflow,
            "calls": [call_document(call, full=full) for call in calls],
            "ledger": ledger_document(sums, order)}  # fmt: skip


def run_calls(
    store: Store, record: RunRecord, plan: Plan, *, node: str | None = None, full: bool = False
) -> dict[str, Any]:
    """``calls_document`` of the run ``record`` (whose plan is ``plan``), of ``node``
    when given; ``NodeNotFoundError`` for a node the run does not have (a node that
    made no call has none: an empty list)."""
    if node is not None and node not in plan.nodes:
        raise NodeNotFoundError(
            f"run {record.id[:8]} has no node '{node}' (nodes: {', '.join(plan.nodes)})"
        )
    calls = store.model_calls(record.id, node=node)
    return calls_document(record.id, record.workflow, calls, store.run_call_sums(record.id),
                          list(plan.nodes), full=full)  # fmt: skip


def spend_document(
    found: Mapping[tuple[str, str], Spend], since: float, workflow: str | None
) -> dict[str, Any]:
    """``Store.workflow_spend``: per workflow and model (a tool call's model is the
    tool's name) the calls, tokens and cost since ``since``, and their total."""
    rows = []
    total = Spend()
    for (name, model), spend in sorted(found.items()):
        rows.append({"workflow": name, "model": model, **_spend(spend)})
        total = Spend(**{f.name: getattr(total, f.name) + getattr(spend, f.name)
                         for f in fields(Spend)})  # fmt: skip
    return {"since": since, "workflow": workflow, "spend": rows, "total": _spend(total)}


def _spend(spend: Spend) -> dict[str, Any]:
    return {"calls": spend.calls, "input_tokens": spend.input_tokens,
            "output_tokens": spend.output_tokens,
            "cached_input_tokens": spend.cached_input_tokens,
            "reasoning_tokens": spend.reasoning_tokens, "cost_nanos": spend.cost,
            "cost": exact_dollars(spend.cost), "possibly_billed": spend.possibly_billed,
            "estimated": spend.estimated}  # fmt: skip
