"""The LLM ledger as metrics: calls, tokens and cost per workflow and model, read from
the store with its other gauges (``StoreGauges.llm_calls``, one grouped query in the
same read, kept for the collector's TTL).

They are counters, though every server computes them from the store rather than
counting in its own process: the ledger only grows (no call is deleted), and a counter
here counts *ended* calls only. A call in flight is charged its reservation until it
ends, then its cost, which is less: counted while in flight, the total would go down
and Prometheus would take that for a reset. So the calls in flight are a gauge of their
own. Like every store gauge, N servers expose the same numbers: aggregate across
instances with ``max``, never ``sum`` (``deploy/grafana/keel.json`` does).

A tool call (an agent's) has no tokens or cost; it is counted apart, by tool name, so
the ``model`` label only ever holds models.
"""

from __future__ import annotations

from collections import defaultdict

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from keel.store.gauges import StoreGauges
from keel.store.model_calls import NANOS

#: the token kinds ``keel_llm_tokens_total`` counts, and the field of ``CallSums`` each is
TOKENS = {"input": "input_tokens", "output": "output_tokens",
          "cached_input": "cached_input_tokens", "reasoning": "reasoning_tokens"}  # fmt: skip


def llm_families(gauges: StoreGauges) -> list[Metric]:
    calls = CounterMetricFamily(
        "keel_llm_calls", "Model calls ended, by how: answered, failed, possibly_billed "
        "(sent by a process that died before recording the answer)",
        labels=["workflow", "model", "state"],
    )  # fmt: skip
    in_flight = GaugeMetricFamily(
        "keel_llm_calls_in_flight", "Model calls sent and not ended yet",
        labels=["workflow", "model"],
    )  # fmt: skip
    tokens = CounterMetricFamily(
        "keel_llm_tokens", "Tokens of model calls, by kind: input, output, cached_input "
        "(part of input), reasoning (part of output)", labels=["workflow", "model", "kind"],
    )  # fmt: skip
    cost = CounterMetricFamily(
        "keel_llm_cost_dollars", "What ended model calls cost, in US dollars (a possibly "
        "billed call at its reservation)", labels=["workflow", "model"],
    )  # fmt: skip
    tools = CounterMetricFamily(
        "keel_llm_tool_calls", "Agents' tool calls ended, by how: answered, failed, "
        "possibly_billed", labels=["workflow", "tool", "state"],
    )  # fmt: skip
    flying: dict[tuple[str, str], int] = defaultdict(int)
    spent: dict[tuple[str, str], int] = defaultdict(int)
    used: dict[tuple[str, str, str], int] = defaultdict(int)
    for (workflow, kind, model, state), sums in sorted(gauges.llm_calls.items()):
        if kind == "tool":
            if state != "sent":
                tools.add_metric([workflow, model, state], sums.calls)
            continue
        for name, field in TOKENS.items():
            used[(workflow, model, name)] += getattr(sums, field)
        if state == "sent":
            flying[(workflow, model)] += sums.calls
            continue
        calls.add_metric([workflow, model, state], sums.calls)
        spent[(workflow, model)] += sums.cost
    for (workflow, model), count in sorted(flying.items()):
        in_flight.add_metric([workflow, model], count)
    for (workflow, model, name), count in sorted(used.items()):
        tokens.add_metric([workflow, model, name], count)
    for (workflow, model), nanos in sorted(spent.items()):
        cost.add_metric([workflow, model], nanos / NANOS)
    return [calls, in_flight, tokens, cost, tools]
