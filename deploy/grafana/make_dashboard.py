"""Generate ``deploy/grafana/keel.json``, the Grafana dashboard of keel's metrics.

keel.json is generated: change this script, then regenerate and commit both::

    python deploy/grafana/make_dashboard.py

(from any folder: it writes next to itself). ``tests/unit/test_grafana_dashboard.py``
checks that every query, the panels' and the template variables', reads only metrics
keel serves, and that the store gauges are never summed across instances.

Two kinds of metric, aggregated differently:

- counters and histograms are each process's own counts (a worker's, a server's):
  summed across instances;
- the store gauges (``STORE_GAUGES``) are computed by every ``keel serve`` from the same
  store, so N servers expose the same numbers N times: they are taken with ``max by``
  (``min`` for ``keel_store_up``: any server that cannot read the store shows), and only
  then summed over their own labels (queues, workflows) where a total is wanted.
- the LLM counters (``keel_llm_*_total``) are read from the store's ledger too: each
  server's rate is taken first (``rate``, ``increase``), then ``max by`` every label
  of the series, then summed over the labels a panel does not show.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().with_name("keel.json")
DS = {"type": "prometheus", "uid": "${datasource}"}
WF = 'workflow=~"$workflow"'
Q = 'queue=~"$queue"'
#: the gauges every keel serve reads from the store (``keel.server.gauges``)
STORE_GAUGES = ("keel_queue_depth", "keel_queue_oldest_age_seconds", "keel_runs_waiting",
                "keel_late_runs", "keel_notifications_pending", "keel_workers_live",
                "keel_store_up", "keel_alerts_firing", "keel_llm_calls_in_flight")  # fmt: skip
Step = dict[str, Any]
GREEN: Step = {"color": "green", "value": None}
UP: list[Step] = [{"color": "red", "value": None}, {"color": "green", "value": 1}]


class Board:
    """Panels laid out top to bottom: ``y`` is where the next line of panels goes."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.y = 0

    def row(self, title: str) -> None:
        self.panels.append({"type": "row", "title": title, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                            "id": len(self.panels) + 1, "panels": []})  # fmt: skip
        self.y += 1

    def ts(self, title: str, targets: list[tuple[str, str]], unit: str = "short", x: int = 0,
           w: int = 12, h: int = 8, desc: str = "") -> None:  # fmt: skip
        self.panels.append({
            "type": "timeseries", "title": title, "description": desc, "datasource": DS,
            "id": len(self.panels) + 1, "gridPos": {"h": h, "w": w, "x": x, "y": self.y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom",
                                   "calcs": ["lastNotNull", "max"]},
                        "tooltip": {"mode": "multi"}},
            "targets": [{"datasource": DS, "expr": e, "legendFormat": legend,
                         "refId": chr(65 + i)} for i, (e, legend) in enumerate(targets)],
        })  # fmt: skip

    def stat(self, title: str, expr: str, unit: str = "short", x: int = 0, w: int = 4,
             desc: str = "", thresholds: list[Step] | None = None) -> None:  # fmt: skip
        self.panels.append({
            "type": "stat", "title": title, "description": desc, "datasource": DS,
            "id": len(self.panels) + 1, "gridPos": {"h": 4, "w": w, "x": x, "y": self.y},
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {
                "mode": "absolute", "steps": thresholds or [GREEN]}}, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
            "targets": [{"datasource": DS, "expr": expr, "refId": "A"}],
        })  # fmt: skip

    def down(self, h: int) -> None:
        self.y += h


def rate(metric: str, by: str, where: str = WF, window: str = "$__rate_interval") -> str:
    """Per second, summed across instances (a counter is each process's own)."""
    return f"sum by ({by}) (rate({metric}{{{where}}}[{window}]))"


def p(q: float, metric: str, by: str, where: str = WF) -> str:
    return f"histogram_quantile({q}, {rate(metric + '_bucket', 'le, ' + by, where)})"


def now_row(board: Board) -> None:
    board.row("Now")
    red: list[Step] = [GREEN, {"color": "red", "value": 1}]
    board.stat("Store up", "min(keel_store_up)", x=0, thresholds=UP,
               desc="0: a server could not read the store for its gauges")  # fmt: skip
    board.stat("Live workers", "max(keel_workers_live)", x=4, thresholds=UP)
    # an empty gauge has no series: "or vector(0)" shows 0, not "No data"
    board.stat("Ready attempts", f"sum(max by (queue) (keel_queue_depth{{{Q}}})) or vector(0)",
               x=8)  # fmt: skip
    board.stat("Oldest ready", f"max(keel_queue_oldest_age_seconds{{{Q}}})", unit="s", x=12,
               thresholds=[GREEN, {"color": "orange", "value": 60},
                           {"color": "red", "value": 300}])  # fmt: skip
    board.stat("Late runs", f"sum(max by (workflow) (keel_late_runs{{{WF}}})) or vector(0)", x=16,
               thresholds=red, desc="runs not ended past their workflow's expected_duration",
               )  # fmt: skip
    board.stat("Notifications pending", "max(keel_notifications_pending)", x=20, w=2)
    board.stat("Alerts firing", "sum(max by (alert) (keel_alerts_firing)) or vector(0)", x=22,
               w=2, thresholds=red, desc="alert rules firing now (keel alerts)")  # fmt: skip
    board.down(4)


def runs_row(board: Board) -> None:
    board.row("Runs")
    board.ts("Runs started / s", [
        (rate("keel_runs_started_total", "workflow"), "{{workflow}}"),
        (rate("keel_runs_late_total", "workflow"), "marked late: {{workflow}}"),
    ], unit="reqps")  # fmt: skip
    board.ts("Runs finished / s", [
        (rate("keel_runs_finished_total", "workflow, status"), "{{workflow}} {{status}}"),
    ], unit="reqps", x=12)  # fmt: skip
    board.down(8)
    failed = rate("keel_runs_finished_total", "workflow", f'status="failed",{WF}', "15m")
    board.ts("Run failure ratio", [
        (f"{failed} / {rate('keel_runs_finished_total', 'workflow', WF, '15m')}", "{{workflow}}"),
    ], unit="percentunit", desc="failed / finished over 15 minutes")  # fmt: skip
    board.ts("Runs waiting, by what for", [
        ("max by (kind) (keel_runs_waiting)", "{{kind}}"),
        (f"max by (workflow) (keel_late_runs{{{WF}}})", "late: {{workflow}}"),
    ], x=12)  # fmt: skip
    board.down(8)


def attempts_row(board: Board) -> None:
    board.row("Attempts")
    duration = "keel_attempt_duration_seconds"
    board.ts("Attempt duration p50 / p95", [
        (p(0.5, duration, "workflow"), "p50 {{workflow}}"),
        (p(0.95, duration, "workflow"), "p95 {{workflow}}"),
    ], unit="s")  # fmt: skip
    board.ts("Slowest nodes (p95)", [
        (f"topk(10, {p(0.95, duration, 'workflow, node')})", "{{workflow}}.{{node}}"),
    ], unit="s", x=12)  # fmt: skip
    board.down(8)
    board.ts("Attempts / s by outcome", [
        (rate("keel_attempts_total", "outcome"), "{{outcome}}"),
    ], unit="reqps")  # fmt: skip
    board.ts("Failures / s by error type", [
        (rate("keel_attempt_failures_total", "error_type"), "{{error_type}}"),
        (f"sum(rate(keel_attempt_retries_total{{{WF}}}[$__rate_interval]))", "retried"),
    ], unit="reqps", x=12)  # fmt: skip
    board.down(8)


def queues_row(board: Board) -> None:
    board.row("Queues and workers")
    board.ts("Queue depth", [(f"max by (queue) (keel_queue_depth{{{Q}}})", "{{queue}}")])
    board.ts("Oldest ready attempt", [
        (f"max by (queue) (keel_queue_oldest_age_seconds{{{Q}}})", "{{queue}}"),
    ], unit="s", x=12)  # fmt: skip
    board.down(8)
    board.ts("Queue lag p95 (ready to started)", [
        (p(0.95, "keel_queue_lag_seconds", "queue", Q), "{{queue}}"),
    ], unit="s")  # fmt: skip
    board.ts("Worker slots", [  # each worker's own: summed
        ("sum by (state) (keel_worker_slots)", "{{state}}"),
        ("sum(rate(keel_attempts_reclaimed_total[$__rate_interval]))", "reclaimed / s"),
    ], x=12)  # fmt: skip
    board.down(8)


def ledger(fn: str, metric: str, labels: str, by: str, window: str = "$__rate_interval",
           where: str = WF) -> str:  # fmt: skip
    """A rate (``fn``) of a counter every server reads from the store's ledger: taken
    per server, then ``max by`` all its ``labels`` (the servers' numbers are the same),
    then summed ``by`` what the panel shows."""
    per = f"max by ({labels}) ({fn}({metric}{{{where}}}[{window}]))"
    return f"sum by ({by}) ({per})" if by else f"sum({per})"


def llm_row(board: Board) -> None:
    board.row("LLM")
    cost, calls, tools = ("keel_llm_cost_dollars_total", "keel_llm_calls_total",
                          "keel_llm_tool_calls_total")  # fmt: skip
    wm, wms, wts = "workflow, model", "workflow, model, state", "workflow, tool, state"
    billed = f'state="possibly_billed",{WF}'
    spent = ledger("increase", cost, wm, "", "$__range")
    board.stat("LLM cost (time range)", f"{spent} or vector(0)", unit="currencyUSD", w=6,
               desc="what model calls that ended in the time range cost (a possibly billed "
                    "call at its reservation)")  # fmt: skip
    lost = ledger("increase", calls, wms, "", "$__range", billed)
    board.stat("Possibly billed calls (time range)", f"{lost} or vector(0)", x=6, w=6,
               thresholds=[GREEN, {"color": "red", "value": 1}],
               desc="calls sent by a worker that died before recording the answer: billed "
                    "or not, no one knows (keel show RUN says which)")  # fmt: skip
    flying = f"max by ({wm}) (keel_llm_calls_in_flight{{{WF}}})"
    board.stat("Model calls in flight", f"sum({flying}) or vector(0)", x=12, w=6)
    used = ledger("increase", tools, wts, "", "$__range")
    board.stat("Tool calls (time range)", f"{used} or vector(0)", x=18, w=6,
               desc="agents' tool calls ended in the time range")  # fmt: skip
    board.down(4)
    board.ts("LLM cost / hour by workflow and model", [
        (f"{ledger('rate', cost, wm, wm)} * 3600", "{{workflow}} {{model}}"),
    ], unit="currencyUSD")  # fmt: skip
    board.ts("Tokens / s by model and kind", [
        (ledger("rate", "keel_llm_tokens_total", f"{wm}, kind", "model, kind"),
         "{{model}} {{kind}}"),
    ], x=12)  # fmt: skip
    board.down(8)
    board.ts("Model calls / s by state", [
        (ledger("rate", calls, wms, "model, state"), "{{model}} {{state}}"),
        (f"sum by (model) ({flying})", "in flight: {{model}}"),
    ], unit="reqps")  # fmt: skip
    board.ts("Tool calls / s by tool and state", [
        (ledger("rate", tools, wts, "tool, state"), "{{tool}} {{state}}"),
    ], unit="reqps", x=12)  # fmt: skip
    board.down(8)


def variable(name: str, query: str, ref: str) -> dict[str, Any]:
    return {"name": name, "type": "query", "datasource": DS, "label": name,
            "query": {"query": query, "refId": ref}, "includeAll": True, "multi": True,
            "allValue": ".*", "refresh": 2,
            "current": {"text": "All", "value": "$__all"}}  # fmt: skip


def dashboard() -> dict[str, Any]:
    board = Board()
    for add in (now_row, runs_row, attempts_row, queues_row, llm_row):
        add(board)
    return {
        "title": "keel", "uid": "keel-overview", "tags": ["keel"], "timezone": "browser",
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "description": "keel: runs, attempts, queues, workers and LLM calls, from keel "
                       "serve's /metrics "
                       "(store gauges and the server's counts) and each keel worker's "
                       "--metrics-port",
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus",
             "label": "Prometheus"},
            # the workflows and queues any series names: one where nothing ever started
            # (a stuck queue) is listed too
            variable("workflow", 'label_values({__name__=~"keel_runs_started_total|'
                     'keel_runs_finished_total|keel_late_runs"}, workflow)', "wf"),
            variable("queue", 'label_values({__name__=~"keel_queue_depth|'
                     'keel_queue_lag_seconds_bucket"}, queue)', "q"),
        ]},
        "annotations": {"list": []},
        "panels": board.panels,
    }  # fmt: skip


if __name__ == "__main__":
    made = dashboard()
    OUT.write_text(json.dumps(made, indent=2) + "\n")
    print(f"{OUT}: {len(made['panels'])} panels")
