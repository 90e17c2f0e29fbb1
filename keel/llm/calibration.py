"""What earlier runs of a workflow spent per model node, read from the ledger, so that
``keel estimate``'s expected values follow what the nodes actually did (design point 7)
rather than a fixed share of ``max_tokens``.

Cheap on purpose: the newest ``RUNS`` ended runs of the workflow (any version: a node
keeps its id across versions) and their model calls, one query per run. Only answered
calls count. A node's requests per run are over every run read, those it did not run
in included: that is how often a branch is taken, a map's list how long, an agent's
loop how many turns, re-asks included.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from keel.store.protocol import Store

#: how many of the workflow's newest runs are read
RUNS = 50


#: the statuses of a run that has ended: a running one has not made all its calls yet
ENDED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class Observed:
    """One node's answered model calls over the runs read."""

    calls: int
    input_tokens: int
    output_tokens: int
    #: (run, item) pairs with a call: a map's items, or one per run
    items: int
    #: the runs read (whether or not the node made calls in them)
    runs: int

    @property
    def calls_per_run(self) -> float:
        return self.calls / self.runs

    @property
    def items_per_run(self) -> float:
        return self.items / self.runs

    @property
    def mean_input(self) -> float:
        return self.input_tokens / self.calls

    @property
    def mean_output(self) -> float:
        return self.output_tokens / self.calls


@dataclass(frozen=True, slots=True)
class Calibration:
    #: ended runs read
    runs: int
    nodes: dict[str, Observed] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(observed.calls for observed in self.nodes.values())


def calibration(store: Store, workflow: str, *, runs: int = RUNS) -> Calibration:
    """What the newest ``runs`` ended runs of ``workflow`` recorded, per node."""
    records = [
        record
        for status in ENDED
        for record in store.list_runs(workflow=workflow, status=status, limit=runs)
    ]
    records = sorted(records, key=lambda record: record.created_at, reverse=True)[:runs]
    calls: dict[str, int] = defaultdict(int)
    tokens_in: dict[str, int] = defaultdict(int)
    tokens_out: dict[str, int] = defaultdict(int)
    seen_items: dict[str, set[tuple[str, int | None]]] = defaultdict(set)
    for record in records:
        for call in store.model_calls(record.id):
            if call.kind != "model" or call.state != "answered":
                continue
            calls[call.node] += 1
            tokens_in[call.node] += call.input_tokens
            tokens_out[call.node] += call.output_tokens
            seen_items[call.node].add((record.id, call.item))
    nodes = {
        node: Observed(
            calls=count, input_tokens=tokens_in[node], output_tokens=tokens_out[node],
            items=len(seen_items[node]), runs=len(records),
        )
        for node, count in calls.items()
    }  # fmt: skip
    return Calibration(runs=len(records), nodes=nodes)
