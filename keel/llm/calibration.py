"""What earlier runs of a workflow spent per model node, read from the ledger, so that
``keel estimate``'s expected values follow what the nodes actually did (design point 7)
rather than a fixed share of ``max_tokens``.

Cheap on purpose: the newest ``RUNS`` runs of the workflow (any version: a node keeps
its id across versions) and their model calls, one query per run. Only answered calls
count; a run counts for how often a node runs only once it has succeeded.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from keel.store.protocol import Store

#: how many of the workflow's newest runs are read
RUNS = 50


@dataclass(frozen=True, slots=True)
class Observed:
    """One node's answered model calls over the runs read."""

    calls: int
    input_tokens: int
    output_tokens: int
    #: runs in which the node made a call
    runs: int
    #: (run, item) pairs with a call: a map's items, or one per run
    items: int
    #: succeeded runs in which the node made a call
    succeeded_runs: int

    @property
    def mean_input(self) -> float:
        return self.input_tokens / self.calls

    @property
    def mean_output(self) -> float:
        return self.output_tokens / self.calls


@dataclass(frozen=True, slots=True)
class Calibration:
    #: runs read, and how many of them succeeded
    runs: int
    succeeded: int
    nodes: dict[str, Observed] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(observed.calls for observed in self.nodes.values())


def calibration(store: Store, workflow: str, *, runs: int = RUNS) -> Calibration:
    """What the newest ``runs`` runs of ``workflow`` recorded, per node."""
    records = store.list_runs(workflow=workflow, limit=runs)
    succeeded = {record.id for record in records if record.status == "succeeded"}
    calls: dict[str, int] = defaultdict(int)
    tokens_in: dict[str, int] = defaultdict(int)
    tokens_out: dict[str, int] = defaultdict(int)
    seen_runs: dict[str, set[str]] = defaultdict(set)
    seen_items: dict[str, set[tuple[str, int | None]]] = defaultdict(set)
    for record in records:
        for call in store.model_calls(record.id):
            if call.kind != "model" or call.state != "answered":
                continue
            calls[call.node] += 1
            tokens_in[call.node] += call.input_tokens
            tokens_out[call.node] += call.output_tokens
            seen_runs[call.node].add(record.id)
            seen_items[call.node].add((record.id, call.item))
    nodes = {
        node: Observed(
            calls=count, input_tokens=tokens_in[node], output_tokens=tokens_out[node],
            runs=len(seen_runs[node]), items=len(seen_items[node]),
            succeeded_runs=len(seen_runs[node] & succeeded),
        )
        for node, count in calls.items()
    }  # fmt: skip
    return Calibration(runs=len(records), succeeded=len(succeeded), nodes=nodes)
