"""What the run page shows of one run, read once per drawing: the run's history is read
and replayed once, and every part of the page (header, why, graph states, steps,
timeline, first page of history) is taken from that one reading, so the parts agree
with each other and with ``keel show``.

Node states are said in the words the dashboard's state classes know (``.state.X`` in
app.css, ``keelGraph``'s colours and icons): a node waiting for its parents is
``pending``, one on the queue ``queued`` (``retrying`` while its retry's backoff runs),
one waiting for an approval, timer, signal or child run ``waiting``. A map node is one
node with its items counted per state.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from keel.engine.plan import Plan
from keel.engine.state import NodeState, is_finished
from keel.runtime.views.attempts import Attempt, attempts_of
from keel.runtime.views.documents import run_detail
from keel.runtime.views.report import RunReport, run_report
from keel.runtime.views.why import run_why
from keel.runtime.views.why_reasons import NodeWhy, RunWhy
from keel.spec.layout import GraphLayout, layout_of, neighbourhood
from keel.store.protocol import Store
from keel.store.records import RunRecord, StoredEvent

#: above this many nodes the graph first draws the neighbourhood of one node
DRAW_ALL_UP_TO = 500
#: events on one page of the history
HISTORY_PAGE = 200
#: steps drawn with the page at most (the rest on demand): failed and unfinished first
STEPS_FIRST = 150
#: characters of an output shown in the steps table
PREVIEW_CHARS = 80

_WORDS = {"waiting": "pending", "scheduled": "queued", "awaiting": "waiting",
          "upstream_failed": "skipped", "withdrawn": "cancelled",
          "not_started": "pending"}  # fmt: skip
#: display states of nodes that have not ended (the graph's first focus is one of these)
UNFINISHED = frozenset({"running", "queued", "retrying", "waiting"})


def display_state(status: str, retry_at: float | None = None) -> str:
    """A node's status (``keel show``'s) as the page's state classes name it."""
    if status == "scheduled" and retry_at is not None:
        return "retrying"
    return _WORDS.get(status, status)


def item_counts(node: NodeState) -> dict[str, int] | None:
    """A map node's items per state (None: not a map, or not expanded yet)."""
    if node.item_count is None:
        return None
    running = sum(1 for started in node.items_open.values() if started)
    counts = {"succeeded": node.items_done, "running": running,
              "queued": len(node.items_open) - running, "failed": len(node.items_failed),
              "pending": max(0, node.item_count - node.next_item)}  # fmt: skip
    return {state: n for state, n in counts.items() if n}


def output_preview(value: Any) -> str:
    """An output in one short line for a table cell."""
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True)
class Step:
    """A row of the steps table."""

    node: str
    state: str
    #: the status ``keel show`` gives (``upstream_failed``...), for the cell's title
    status: str
    attempts: int
    started_at: float | None
    duration: float | None
    error_type: str | None
    error_message: str | None
    #: its output (the table shows a ``preview``)
    output: Any
    #: a map: ``done/total`` items
    items: str | None
    #: a wait: what for; a node set by hand or skipped: why
    note: str | None


@dataclass(frozen=True, slots=True)
class Stuck:
    """A node of the why line: its first reason, and how many entries (map items) the
    run's why has for it."""

    node: str
    first: NodeWhy
    count: int


@dataclass
class RunView:
    record: RunRecord
    plan: Plan
    report: RunReport
    #: ``run_detail``'s document (``keel show``)
    detail: dict[str, Any]
    history: list[StoredEvent]
    attempts: list[Attempt]
    #: why it has not ended (None: it has)
    why: RunWhy | None
    now: float
    #: node id -> {"state", "counts"} for the graph
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return is_finished(self.report.state.status)

    @property
    def status(self) -> str:
        return str(self.detail["status"])

    def stuck(self) -> list[Stuck]:
        """The first reason per node held by something other than its own turn."""
        if self.why is None:
            return []
        found: dict[str, Stuck] = {}
        for entry in self.why.nodes:
            if not entry.stuck:
                continue
            seen = found.get(entry.node)
            found[entry.node] = (Stuck(entry.node, entry, 1) if seen is None else
                                 Stuck(entry.node, seen.first, seen.count + 1))  # fmt: skip
        return list(found.values())

    def focus(self) -> str | None:
        """The node a big graph is first drawn around: the first failed node, else the
        first not ended, else the first."""
        order = [step.node for step in self.steps]
        for wanted in ({"failed"}, UNFINISHED):
            for node in order:
                if self.states.get(node, {}).get("state") in wanted:
                    return node
        return order[0] if order else None

    def first_steps(self) -> list[Step]:
        """The steps the page is drawn with: all of a run up to ``STEPS_FIRST`` nodes,
        else those not succeeded first, filled up in plan order (plan order kept)."""
        if len(self.steps) <= STEPS_FIRST:
            return self.steps
        quiet = {"succeeded", "skipped", "pending"}
        chosen = [i for i, step in enumerate(self.steps) if step.state not in quiet][:STEPS_FIRST]
        taken = set(chosen)
        for i in range(len(self.steps)):
            if len(chosen) >= STEPS_FIRST:
                break
            if i not in taken:
                chosen.append(i)
        return [self.steps[i] for i in sorted(chosen)]

    def newest_events(self) -> list[StoredEvent]:
        """The last page of the history, newest first."""
        return list(reversed(self.history[-HISTORY_PAGE:]))

    def child_runs(self) -> list[str]:
        return list(self.detail["children"])


@dataclass(frozen=True, slots=True)
class Replayed:
    """What a run's history says, whatever the time: read and replayed once per change
    of the run (``Replays``)."""

    #: the last event's seq and hash: the run's ``last_seq`` and ``head_hash`` when read
    last_seq: int
    head_hash: str
    history: list[StoredEvent]
    report: RunReport
    attempts: list[Attempt]
    states: dict[str, dict[str, Any]]
    steps: list[Step]


def replayed(plan: Plan, history: list[StoredEvent]) -> Replayed:
    report = run_report(plan, history)
    state = report.state
    states: dict[str, dict[str, Any]] = {}
    steps: list[Step] = []
    for node_id, node in report.nodes.items():
        shown = display_state(node.status, node.retry_at)
        counts = item_counts(state.nodes[node_id]) if node_id in state.nodes else None
        states[node_id] = {"state": shown, "counts": counts} if counts else {"state": shown}
        error = node.error if node.status in ("failed", "scheduled", "running") else None
        note = node.decision or node.reason or (node.waits_for if node.status == "awaiting"
                                                 else None)  # fmt: skip
        steps.append(Step(
            node=node_id, state=shown, status=node.status, attempts=node.attempts,
            started_at=node.started_at, duration=node.duration,
            error_type=None if error is None else error.type,
            error_message=None if error is None else error.message,
            output=node.output,
            items=None if node.items is None else f"{node.items_done}/{node.items}",
            note=note,
        ))  # fmt: skip
    last = history[-1] if history else None
    return Replayed(0 if last is None else last.seq, "" if last is None else last.hash,
                    history, report, attempts_of(history), states, steps)  # fmt: skip


#: runs kept replayed by a process, and the events they may hold together: a replayed
#: event, with its share of the report, steps and attempts, holds 1.2 KB (a run of 2,000
#: nodes) to 1.8 KB (runs of ten events) as measured, so at most some 180 MB
REPLAYED_RUNS = 32
REPLAYED_EVENTS = 100_000


class Replays:
    """The last runs replayed, each as of its last event: a page drawn again, its parts
    loaded after it, and every tab following the run read and replay a history once per
    change of the run, not once per request. A run is known by its id and the head of
    its history, so an entry is used only for the very history it was made from; the
    values are never changed once made, so threads share them.

    One per process (``app.state.replays``), bounded by runs (``size``) and by the events
    their histories hold together (``most_events``): the least recently used go first,
    the run just replayed stays whatever its size."""

    def __init__(self, size: int = REPLAYED_RUNS, most_events: int = REPLAYED_EVENTS) -> None:
        self.size, self.most_events = size, most_events
        self._runs: OrderedDict[str, Replayed] = OrderedDict()
        self._events = 0
        self._lock = threading.Lock()

    def of(self, store: Store, record: RunRecord, plan: Plan) -> Replayed:
        with self._lock:
            found = self._runs.get(record.id)
            if found is not None and (found.last_seq, found.head_hash) == (
                record.last_seq, record.head_hash):  # fmt: skip
                self._runs.move_to_end(record.id)
                return found
        made = replayed(plan, store.history(record.id))
        with self._lock:
            gone = self._runs.pop(record.id, None)
            self._events -= 0 if gone is None else len(gone.history)
            self._runs[record.id] = made
            self._events += len(made.history)
            while len(self._runs) > 1 and (
                len(self._runs) > self.size or self._events > self.most_events
            ):
                _, old = self._runs.popitem(last=False)
                self._events -= len(old.history)
        return made

    @property
    def events(self) -> int:
        """The events the runs kept hold together."""
        return self._events

    def __len__(self) -> int:
        return len(self._runs)

    def clear(self) -> None:
        """Forget every run (a benchmark measures a page drawn from cold)."""
        with self._lock:
            self._runs.clear()
            self._events = 0


def read_run(store: Store, record: RunRecord, plan: Plan, now: float, replays: Replays) -> RunView:
    """Everything the run page shows of ``record``: what its history says (replayed
    once per change, ``replays``: the process's), and what depends on the time and the
    store now (what it is doing, why it has not ended)."""
    known = replays.of(store, record, plan)
    history, report = known.history, known.report
    detail = run_detail(store, record, plan, now, history=history, report=report)
    ended = is_finished(report.state.status) or record.pruned_at is not None
    why = None if ended else run_why(store, record, plan, now, history=history)
    return RunView(record, plan, report, detail, history, known.attempts, why, now,
                   states=known.states, steps=known.steps)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Drawing:
    """What the graph draws first: cytoscape elements (the whole graph, or a focus
    node's neighbourhood when the graph is big) and how many nodes the graph has."""

    elements: list[dict[str, Any]]
    total: int
    shown: int
    focus: str | None

    @property
    def partial(self) -> bool:
        return self.shown < self.total


def drawing(view: RunView, *, everything: bool = False, focus: str | None = None) -> Drawing:
    """The graph's elements with each node's state in its data; above
    ``DRAW_ALL_UP_TO`` nodes only the neighbourhood of ``focus`` (default: the first
    failed or unfinished node) unless ``everything``."""
    whole = layout_of(view.plan.spec)
    total = len(whole.nodes)
    graph: GraphLayout = whole
    centre = None
    if total > DRAW_ALL_UP_TO and not everything:
        centre = focus if focus in whole.node_map else view.focus()
        if centre is not None and centre in whole.node_map:
            graph = neighbourhood(whole, centre, 2)
            if len(graph.nodes) > DRAW_ALL_UP_TO:
                graph = neighbourhood(whole, centre, 1)
    elements = graph.to_cytoscape()
    for element in elements:
        data = element["data"]
        if "source" not in data:
            data.update(view.states.get(data["id"], {}))
    return Drawing(elements, total, len(graph.nodes), centre)
