"""The live view of a run on the terminal, and the summary printed when it ends.

The live view is fed the events the worker records (an observer), so it costs no
database reads; the summary reads the run's history once through ``run_report``.
"""

from __future__ import annotations

import time

from rich.console import Console, Group, RenderableType
from rich.text import Text

from keel.cli.layout import hanging_lines
from keel.engine.events import (
    MapExpanded,
    NodeEvent,
    NodeFailed,
    NodeReclaimed,
    NodeScheduled,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
)
from keel.engine.plan import Plan
from keel.runtime.views.report import RunReport
from keel.store.records import StoredEvent

#: graphs up to this size are shown node by node; larger ones as counts
DETAIL_LIMIT = 30

SYMBOLS = {
    "pending": ("·", "dim"),
    "running": ("▶", "cyan"),
    "succeeded": ("✓", "green"),
    "failed": ("✗", "red"),
    "skipped": ("\u2013", "yellow"),  # en dash, as in `keel run`'s summary
    "upstream_failed": ("\u2013", "red"),
    "cancelled": ("\u2298", "yellow"),
    "awaiting": ("\u29d7", "yellow"),  # an hourglass: waits for a person, a time, an event
    "paused": ("\u2016", "yellow"),
    "not_started": ("·", "dim"),
    #: a run that has not ended with nothing running, queued or waiting
    "stalled": ("!", "red"),
}


def status_symbol(status: str) -> Text:
    symbol, style = SYMBOLS.get(status, ("·", "dim"))
    return Text(symbol, style=style)


def retries(count: int) -> str:
    return f"{count} retry" if count == 1 else f"{count} retries"


def seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"


class LiveProgress:
    """Node statuses kept up to date from recorded events; rendered by ``rich.Live``."""

    def __init__(self, plan: Plan, run_id: str) -> None:
        self.plan, self.run_id = plan, run_id
        self.started = time.monotonic()
        # failure-path steps (compensations) join the view when they are scheduled
        self.status = dict.fromkeys(plan.graph_nodes, "pending")
        self.items: dict[str, tuple[int, int]] = {}

    def observe(self, events: list[StoredEvent]) -> None:
        for stored in events:
            if stored.run_id != self.run_id:
                continue
            event = stored.event
            if not isinstance(event, NodeEvent):
                continue
            node = event.node
            match event:
                case NodeScheduled(item=None) | NodeReclaimed(item=None):
                    self.status[node] = "pending"
                case NodeStarted():
                    self.status[node] = "running"
                case MapExpanded(count=count):
                    self.status[node] = "running"
                    self.items[node] = (0, count)
                case NodeSucceeded(item=None):
                    self.status[node] = "succeeded"
                case NodeSucceeded():
                    done, count = self.items.get(node, (0, 0))
                    self.items[node] = (done + 1, count)
                case NodeFailed(attempt=0) | NodeFailed(item=None):
                    self.status[node] = "failed"
                case NodeSkipped(upstream_failed=upstream):
                    self.status[node] = "upstream_failed" if upstream else "skipped"

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("succeeded", "running", "pending", "failed", "skipped"), 0)
        for status in self.status.values():
            counts["skipped" if status == "upstream_failed" else status] += 1
        return counts

    def __rich__(self) -> RenderableType:
        elapsed = time.monotonic() - self.started
        head = Text.assemble(
            (self.plan.spec.name, "bold"), f" · run {self.run_id[:8]} · ", ("running", "cyan"),
            f" {seconds(elapsed)}",
        )  # fmt: skip
        counts = "  " + " · ".join(f"{n} {label}" for label, n in self.counts().items())
        lines: list[RenderableType] = [head, Text(counts, style="dim")]
        if len(self.status) <= DETAIL_LIMIT:
            for node, status in self.status.items():
                line = Text("  ") + status_symbol(status) + Text(f" {node}")
                if node in self.items:
                    done, count = self.items[node]
                    line += Text(f"  {done}/{count} items", style="dim")
                lines.append(line)
        return Group(*lines)


def print_summary(console: Console, report: RunReport, run_id: str) -> None:
    state = report.state
    style = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}.get(state.status, "")
    took = f" in {seconds(report.duration)}" if report.duration is not None else ""
    name = (state.plan.spec.name, "bold")
    console.print(Text.assemble(name, f" · run {run_id[:8]} · ", (state.status.value, style), took))
    width = max((len(node) for node in report.nodes), default=0)
    if len(report.nodes) <= DETAIL_LIMIT:
        for node in report.nodes.values():
            head = Text("  ") + status_symbol(node.status) + Text(f" {node.id:<{width}}  ")
            if node.status in ("skipped", "upstream_failed"):
                line = Text(f"{node.status.replace('_', ' ')} ({node.reason})", style="dim")
            elif node.status in ("not_started", "cancelled") and node.duration is None:
                line = Text(node.status.replace("_", " "), style="dim")
            elif node.status == "failed" and node.error is not None:
                line = Text(f"{node.error.type}: {node.error.message}", style="red")
            elif node.status == "succeeded" and node.duration is None and node.reason:
                line = Text(node.reason, style="dim")  # reused by a fork, set by hand
            else:
                line = Text(seconds(node.duration))
                if node.items is not None:  # a map: its items' retries, not their attempts
                    retried = f", {retries(node.retries)}" if node.retries else ""
                    line += Text(f"  {node.items_done}/{node.items} items{retried}", style="dim")
                elif node.attempts > 1:
                    line += Text(f"  ({node.attempts} attempts)", style="dim")
            for part in hanging_lines(console, head, line):
                console.print(part, soft_wrap=True)
    else:
        counts: dict[str, int] = {}
        for node in report.nodes.values():
            counts[node.status] = counts.get(node.status, 0) + 1
        console.print("  " + " · ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    if state.reason:
        for part in hanging_lines(console, Text("reason: "), Text(state.reason, style="red")):
            console.print(part, soft_wrap=True)
