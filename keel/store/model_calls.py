"""Calls a step makes outward, as the store keeps them: model requests (and an agent's
tool calls), each a durable record with its cost. The ledger of tokens and money is
these rows, summed.

A call is written twice. ``CallSent`` before the request leaves (state ``sent``, with
the cost *reserved* for it: the most it can cost), and ``CallEnded`` once the answer is
in (``answered``, with the actual usage and cost), or the request failed (``failed``,
charged what the provider said it used), or a later attempt found it ``sent`` with no
end: its process died between sending and recording, so the provider may have answered
and billed it (``possibly_billed``, charged the reserved cost). A call is never sent
twice for one record: a later attempt serves an ``answered`` call from its record.

Money is kept in integer nano-dollars (1e-9 USD): sums in SQL stay exact.

Budgets reserve before the call (``Store.send_call`` with ``SpendLimits``): in one
transaction the store adds up what the run (and the workflow today) has spent or
reserved, and refuses the call if its reservation would pass a limit; so two workers
racing for the last dollar of one budget cannot both get it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

CallKind = Literal["model", "tool"]
CallState = Literal["sent", "answered", "failed", "possibly_billed"]
#: nano-dollars in one dollar
NANOS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class CallSent:
    """A call about to be made: the record written before it leaves."""

    #: chosen by the caller (uuid hex), so it can end the call it sent
    id: str
    run_id: str
    workflow: str
    node: str
    item: int | None
    attempt: int
    kind: CallKind
    #: sha-256 of the request's canonical JSON (provider, model, settings, messages,
    #: tools, schema): what a later attempt compares before it serves the answer
    fingerprint: str
    provider: str
    model: str
    #: the request as JSON (messages, settings); never a secret
    request: Any
    #: the cost reserved for the call, nano-dollars (its most: max_tokens of output)
    reserved: int
    at: float


@dataclass(frozen=True, slots=True)
class CallEnded:
    """How a sent call ended."""

    id: str
    state: Literal["answered", "failed", "possibly_billed"]
    #: the answer as JSON (``ModelResponse`` as data; a tool's result)
    response: Any = None
    #: what went wrong, as JSON ({"type", "message", ...})
    error: Any = None
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    #: False: the provider sent no usage and the tokens are keel's estimate
    usage_reported: bool = True
    #: nano-dollars
    cost: int = 0
    #: where the price came from ("genai-prices 0.2.5", "config", "unknown model")
    price_source: str = ""
    latency: float = 0.0
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class ModelCall:
    """A stored call, read back: what was sent and, once ended, how it ended. ``seq``
    numbers the calls of one node (and map item) in the order they were sent, across
    attempts; the store gives it."""

    id: str
    run_id: str
    workflow: str
    node: str
    item: int | None
    attempt: int
    seq: int
    kind: CallKind
    state: CallState
    fingerprint: str
    provider: str
    model: str
    request: Any
    reserved: int
    sent_at: float
    response: Any = None
    error: Any = None
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    usage_reported: bool = True
    cost: int = 0
    price_source: str = ""
    latency: float = 0.0
    ended_at: float | None = None

    @property
    def charged(self) -> int:
        """What the call counts against a budget: its cost once ended, its reservation
        while in flight."""
        return self.reserved if self.state == "sent" else self.cost


@dataclass(frozen=True, slots=True)
class SpendLimits:
    """Limits a call's reservation must fit, in nano-dollars (None: no limit):
    ``run`` over the whole run; ``workflow_day`` over every run of the workflow since
    ``day_start`` (seconds since the epoch: the day's start, UTC)."""

    run: int | None = None
    workflow_day: int | None = None
    day_start: float = 0.0


@dataclass(frozen=True, slots=True)
class SpendRefused:
    """Why ``send_call`` did not record the call: the reservation would pass a limit."""

    #: "run" or "workflow_day"
    scope: Literal["run", "workflow_day"]
    #: nano-dollars spent or reserved already in that scope
    spent: int
    limit: int
    reserved: int


@dataclass(frozen=True, slots=True)
class Spend:
    """Totals of a set of calls (a node, a run, a workflow): every call counted,
    failed and possibly billed ones included."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    #: nano-dollars, ended calls at their cost and in-flight ones at their reservation
    cost: int = 0
    #: how many ended possibly billed (their cost is the reservation: an upper bound)
    possibly_billed: int = 0
    #: how many had no usage from the provider (their tokens are estimates)
    estimated: int = 0


@dataclass(frozen=True, slots=True)
class CallSums:
    """Totals of a group of calls of one state (the group's key is beside it: see
    ``Store.run_call_sums`` and ``StoreGauges.llm_calls``). Kept apart by state so a
    view can say which calls are possibly billed or still in flight, and metrics can
    count ended calls only (an in-flight call's charge, its reservation, goes down when
    it ends: it cannot be part of a counter)."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    #: nano-dollars: ended calls at their cost, calls still ``sent`` at their reservation
    cost: int = 0
    #: how many had no usage from the provider (their tokens are estimates)
    estimated: int = 0
