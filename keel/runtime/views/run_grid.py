"""A workflow's recent runs side by side (the workflow page's grid): its last runs as
columns, its nodes as rows, each cell the node's status in that run (``run_report``,
the view ``keel show`` reads), so a node that fails every time, or got slow since a
deploy, shows as a row.

Bounded: the ``limit`` newest runs (a list read), one history each. Rows are the nodes
of the newest version first, in its order, then nodes only older versions had.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keel.engine.plan import Plan
from keel.runtime.views.report import NodeReport, run_report
from keel.store.protocol import Store
from keel.store.records import RunRecord

#: runs shown by default
RECENT = 20


@dataclass(frozen=True, slots=True)
class GridColumn:
    record: RunRecord
    #: node id -> what happened to it in this run (absent: its version has no such node)
    nodes: dict[str, NodeReport]


@dataclass(frozen=True, slots=True)
class RunGrid:
    #: node ids, one row each
    rows: list[str]
    #: runs, newest first
    columns: list[GridColumn]


def run_grid(
    store: Store, workflow: str, plan_of: Callable[[str], Plan], *, limit: int = RECENT
) -> RunGrid:
    """The newest ``limit`` runs of ``workflow`` with what happened to each node."""
    columns: list[GridColumn] = []
    rows: dict[str, None] = {}
    for record in store.list_runs(workflow=workflow, limit=limit):
        plan = plan_of(record.spec_version)
        if record.pruned_at is not None:  # its history is gone: an empty column
            columns.append(GridColumn(record, {}))
            continue
        report = run_report(plan, store.history(record.id))
        columns.append(GridColumn(record, report.nodes))
        rows.update(dict.fromkeys(report.nodes))
    return RunGrid(list(rows), columns)
