"""The Grafana dashboard in ``deploy/grafana/keel.json`` reads only metrics keel serves:
a renamed or removed metric fails here, not silently on an operator's screen."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from keel.runtime.clock import SystemClock
from keel.runtime.metrics import Metrics
from keel.server.gauges import StoreCollector
from keel.store.sqlite import SQLiteStore

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "keel.json"
#: what Prometheus derives from a histogram's or a counter's family name
_SERIES = ("_bucket", "_sum", "_count", "_total", "_created")


def served_families(store: SQLiteStore) -> set[str]:
    """The metric families a server with a worker in its process exposes."""
    metrics = Metrics()
    metrics.watch_slots(lambda: 0, 1)
    metrics.add(StoreCollector(store, SystemClock()))
    return {family.name for family in metrics.registry.collect()}


def expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for value in node.values() for e in expressions(value)]
    if isinstance(node, list):
        return [e for value in node for e in expressions(value)]
    return []


def family_of(series: str, families: set[str]) -> str:
    if series in families:
        return series
    for suffix in _SERIES:
        if series.endswith(suffix) and series.removesuffix(suffix) in families:
            return series.removesuffix(suffix)
    return series


def test_every_panel_reads_a_metric_keel_serves(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    families = served_families(store)
    store.close()
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = expressions(dashboard["panels"])
    assert len(exprs) >= 20
    named = {series for expr in exprs for series in re.findall(r"\bkeel_[a-z_]+", expr)}
    unknown = sorted(s for s in named if family_of(s, families) not in families)
    assert unknown == []
    # and each family the dashboard is meant for is on it
    shown = {family_of(s, families) for s in named}
    assert families - shown == set()
