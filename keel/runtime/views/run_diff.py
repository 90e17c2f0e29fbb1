"""What differs between two runs, node by node: inputs, outputs, errors, what was skipped.

A run forked from another with a changed input, or the same workflow run before and
after a fix: a person wants to see where the two went differently, not two histories.
Each run is read into its *facts* (``run_facts``): the run's workflow, version, input,
status, output and reason, and per node its status, input (the arguments of its latest
attempt), output, error, why it was skipped or set by hand, and an approval's decision;
the diff is every path where the facts differ (``nodes.book_car.output.reference: "C-1"
-> "C-2"``, ``keel.spec.data_diff``), and the nodes only one run has.

The facts come from ``run_report`` (the one reading of a history that ``keel show``
uses), never from the runs table, and leave out what always differs between two runs
(ids, times, attempt counts, workers): a diff of a run with itself is empty. Pure: the
caller reads the histories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keel.runtime.views.report import NodeReport, RunReport
from keel.spec.data_diff import Change, change_document, data_changes
from keel.store.records import RunRecord


@dataclass(frozen=True, slots=True)
class RunSide:
    run_id: str
    workflow: str
    version: str
    status: str


@dataclass(frozen=True, slots=True)
class RunDiff:
    a: RunSide
    b: RunSide
    #: each difference, its path from the run (``status``, ``input.car``,
    #: ``nodes.book_car.output.reference``); a node only one run has is not walked
    changes: tuple[Change, ...]
    #: nodes only the first (second) run has, in that run's order
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]

    @property
    def same(self) -> bool:
        return not self.changes and not self.only_a and not self.only_b

    @property
    def changed_nodes(self) -> list[str]:
        """The nodes both runs have whose facts differ, in the order of the changes."""
        found = [str(c.path[1]) for c in self.changes if c.path[:1] == ("nodes",)]
        return list(dict.fromkeys(found))


def node_facts(node: NodeReport) -> dict[str, Any]:
    """What a node did that two runs can differ in (not when, or on which worker). A
    node a fork reused did what the run it came from recorded: that it was reused is
    no difference (its reason is left out), its output and input are compared."""
    error = None if node.error is None else {"type": node.error.type,
                                             "message": node.error.message}  # fmt: skip
    return {"status": node.status, "input": node.args, "output": node.output,
            "error": error, "reason": None if node.reused_from else node.reason,
            "decision": node.decision}  # fmt: skip


def run_facts(record: RunRecord, report: RunReport) -> dict[str, Any]:
    """The run as ``diff_runs`` compares it: the history's account (``report``), with
    the workflow and version from its ``record``."""
    state = report.state
    return {
        "workflow": record.workflow, "version": record.spec_version,
        "status": state.status.value, "input": state.input, "output": state.output,
        "reason": state.reason,
        "nodes": {node_id: node_facts(node) for node_id, node in report.nodes.items()},
    }  # fmt: skip


def diff_runs(a: RunRecord, report_a: RunReport, b: RunRecord, report_b: RunReport) -> RunDiff:
    """How run ``b`` differs from run ``a`` (each with its ``run_report``)."""
    facts_a, facts_b = run_facts(a, report_a), run_facts(b, report_b)
    nodes_a, nodes_b = facts_a.pop("nodes"), facts_b.pop("nodes")
    changes = data_changes(facts_a, facts_b)
    for node_id in nodes_b:
        if node_id in nodes_a:
            changes += data_changes(nodes_a[node_id], nodes_b[node_id], ("nodes", node_id))
    only_a = tuple(node_id for node_id in nodes_a if node_id not in nodes_b)
    only_b = tuple(node_id for node_id in nodes_b if node_id not in nodes_a)
    return RunDiff(_side(a, report_a), _side(b, report_b), tuple(changes), only_a, only_b)


def _side(record: RunRecord, report: RunReport) -> RunSide:
    return RunSide(record.id, record.workflow, record.spec_version, report.state.status.value)


def run_diff_document(diff: RunDiff) -> dict[str, Any]:
    """The diff as JSON (``keel diff --json``, ``GET /diff``): ``a`` and ``b`` (run id,
    workflow, version, status), ``same``, every ``changes`` entry
    (``keel.spec.data_diff.change_document``), the ``changed_nodes``, and the nodes
    only one run has (``only_in_a``, ``only_in_b``)."""

    def side(s: RunSide) -> dict[str, Any]:
        return {"run_id": s.run_id, "workflow": s.workflow, "version": s.version,
                "status": s.status}  # fmt: skip

    return {
        "kind": "runs", "a": side(diff.a), "b": side(diff.b), "same": diff.same,
        "changes": [change_document(c) for c in diff.changes],
        "changed_nodes": diff.changed_nodes,
        "only_in_a": list(diff.only_a), "only_in_b": list(diff.only_b),
    }  # fmt: skip
