"""``keel why RUN``: why a run is not progressing, node by node, and the reason lines
``keel show`` prints for its stuck nodes.

The reasons come from ``keel.runtime.views.why`` (through ``Client.why``, so over
``KEEL_SERVER_URL`` too); this module only puts them in words, fitted to the console.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, assert_never

import typer

from keel.cli.common import DbOption, JsonOption, local_time, opened_client, reported_errors
from keel.cli.inspect_commands import RunArgument, activity_words

if TYPE_CHECKING:
    from rich.console import Console

    from keel.runtime.views.why_reasons import (
        ConcurrencyFull,
        GaveBack,
        NodeWhy,
        Reason,
        RunWhy,
    )


def register(app: typer.Typer) -> None:
    app.command()(why)


def why(run_id: RunArgument, as_json: JsonOption = False, db: DbOption = None) -> None:
    """Why a run has not ended: for each node not ended, what holds it (its parents, an
    approval, a timer, a signal, a child run, a retry's backoff, workers without its
    task's code, a concurrency key, a rate limit, an open circuit, a pause, no live
    worker for its queue, a worker that stopped) with its data, or that it runs. Read
    from the run's history and the store."""
    from rich.console import Console

    with opened_client(db) as client, reported_errors():
        found = client.why(run_id)
    if as_json:
        typer.echo(json.dumps(found.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return
    print_why(Console(), found)


def print_why(console: Console, found: RunWhy) -> None:
    from rich.text import Text

    from keel.cli.layout import Cell, Column, hanging_lines, print_field, print_table

    # what it is doing in the words of ``keel runs`` and ``keel show``, not its bare status
    doing = activity_words(found.status, found.activity)
    if not found.nodes:  # said in the same line: there is nothing more to say
        ended = found.status in ("succeeded", "failed", "cancelled")
        doing += ": it has ended" if ended else "; no node is left to run"
    head = Text.assemble((found.workflow, "bold"), f" · run {found.run_id} · ")
    for line in hanging_lines(console, head, doing):
        console.print(line, soft_wrap=True)
    if not found.nodes:
        return
    if found.late:
        print_field(console, "late", "past its workflow's expected_duration",
                    style="yellow")  # fmt: skip
    if found.paused is not None and found.activity is None:  # else the line above said it
        print_field(console, "paused", reason_text(found.paused), style="yellow")
    columns = [Column("node"), Column("status"),
               Column("why", role="long", wrap=True, min_width=30)]  # fmt: skip
    rows: list[list[Cell]] = []
    for label, node in grouped(found.nodes):
        style = "yellow" if node.stuck else ""
        text = node_text(node, pause_said=found.paused is not None)
        rows.append([label, node.status, Text(text, style=style)])
    print_table(console, columns, rows)
    if found.truncated:
        print_field(console, "note", "the run has more attempts queued than were read; "
                    "those are not listed")  # fmt: skip


def grouped(nodes: list[NodeWhy]) -> list[tuple[str, NodeWhy]]:
    """One line per node, and per reason of a map's items (``fan (12 items)``), each
    with the first such entry."""
    counts: dict[tuple[str, str, bool], int] = {}
    first: dict[tuple[str, str, bool], NodeWhy] = {}
    for node in nodes:
        key: tuple[str, str, bool] = (node.node, node.reason.kind, node.item is None)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, node)
    lines = []
    for key, node in first.items():
        count = counts[key]
        if count > 1:
            label = f"{node.node} ({count} items)"
        elif node.item is not None:
            label = f"{node.node}[{node.item}]"
        else:
            label = node.node
        lines.append((label, node))
    return lines


def node_text(node: NodeWhy, *, pause_said: bool = False) -> str:
    """The node's reason in words, then what would hold it next. ``pause_said``: the
    run's pause was said above, so a node held by it says only that."""

    def said(reason: Reason) -> str:
        return "the run is paused" if pause_said and reason.kind == "paused" else (
            reason_text(reason))  # fmt: skip

    text = said(node.reason)
    if node.also:
        text += "; also " + "; ".join(said(reason) for reason in node.also)
    return text


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def _worker(owner: str) -> str:
    """``host:pid`` of a lease owner."""
    return ":".join(owner.split(":")[:2])


def _givers(workers: list[GaveBack]) -> str:
    """The workers that gave an attempt back: "host:1", "host:1 and host:2", "host:1,
    host:2, host:3 and 2 more" (how often each did is in ``--json``)."""
    names = list(dict.fromkeys(_worker(worker.owner) for worker in workers))
    if len(names) > 3:
        return ", ".join(names[:3]) + f" and {len(names) - 3} more"
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _holders(reason: ConcurrencyFull) -> str:
    shown = [f"run {h.run_id[:8]} {h.node}" + ("" if h.item is None else f"[{h.item}]")
             for h in reason.holders[:3]]  # fmt: skip
    more = len(reason.holders) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _at(prefix: str, at: float | None) -> str:
    return "" if at is None else f"{prefix}{local_time(at)}"


def reason_text(reason: Reason) -> str:
    """One reason in words, for a person (its data in full is in ``--json``)."""
    from keel.runtime.views import why_reasons as r

    match reason:
        case r.WaitsForParents():
            return "waits for " + ", ".join(reason.parents)
        case r.WaitsForApproval():
            who = ", ".join(reason.assignees) or reason.role or "anyone"
            return (f"approval {reason.title!r} by {who}{_at(' since ', reason.since)}"
                    f"{_at(', due ', reason.due)}")  # fmt: skip
        case r.WaitsForTimer():
            return f"timer{_at(' until ', reason.until)}"
        case r.WaitsForSignal():
            return (f"signal {reason.name!r}{_at(' since ', reason.since)}"
                    f"{_at(', times out ', reason.timeout_at)}")  # fmt: skip
        case r.WaitsForChildRun():
            now = "is not in the store" if reason.status is None else f"is {reason.status}"
            return f"child run {reason.run_id[:8]} ({reason.workflow}) {now}"
        case r.NoCode():
            from keel.runtime.worker.config import DEFAULT_CODE_WAIT

            total, first = sum(worker.times for worker in reason.workers), reason.since
            times = f"at {local_time(first)}" if total == 1 else (
                f"{total} times since {local_time(first)}")  # fmt: skip
            again = "now" if reason.next_try is None else f"at {local_time(reason.next_try)}"
            wait = f"code_wait (default {DEFAULT_CODE_WAIT:g} s)"
            return (f"no code for task {reason.task!r} on {_givers(reason.workers)}, which "
                    f"gave it back {times}; next try {again}; it fails if no worker with "
                    f"the code takes it within {wait} of the first give-back")  # fmt: skip
        case r.AvailableLater():
            return (f"queued on {reason.queue!r}{_at(' since ', reason.since)}; available "
                    f"at {local_time(reason.at)}")  # fmt: skip
        case r.RetryBackoff():
            after = "" if reason.error is None else f" after {reason.error}"
            return (f"retry backoff until {local_time(reason.until)} (attempt "
                    f"{reason.attempt} of {reason.max_attempts}){after}")  # fmt: skip
        case r.ConcurrencyFull():
            return (f"concurrency key {reason.key!r} full ({len(reason.holders)} of "
                    f"{reason.limit}): held by {_holders(reason)}")  # fmt: skip
        case r.RateLimited():
            return (f"rate limit {reason.key!r} ({reason.limit} per {reason.per:g} s): "
                    f"next start at {local_time(reason.until)}")  # fmt: skip
        case r.CircuitOpen():
            if reason.until is not None:
                return (f"circuit {reason.circuit!r} open until {local_time(reason.until)} "
                        f"after {reason.failures} failures")  # fmt: skip
            probe = _at(" until ", reason.probe_until)
            return f"circuit {reason.circuit!r} half-open: its probe is out{probe}"
        case r.Paused():
            why = f": {reason.reason}" if reason.reason else ""
            return f"run paused by {reason.by or 'someone'}{_at(' since ', reason.since)}{why}"
        case r.NoLiveWorker():
            # a worker that stopped cleanly leaves no row: say only what the store shows
            if reason.last_seen is None:
                return (f"queued on {reason.queue!r} for {_seconds(reason.for_seconds)}: "
                        "no live worker takes it")  # fmt: skip
            seen = local_time(reason.last_seen)
            return (f"queued on {reason.queue!r}{_at(' since ', reason.since)}: no live "
                    f"worker takes it (one was last seen {seen})")  # fmt: skip
        case r.Queued():
            return f"queued on {reason.queue!r}{_at(' since ', reason.since)}"
        case r.LeaseHolderGone():
            seen = ("the store does not list it" if reason.last_seen is None
                    else f"last seen {local_time(reason.last_seen)}")  # fmt: skip
            return (f"leased to {_worker(reason.owner)}, which stopped ({seen})"
                    f"{_at('; lease until ', reason.lease_expires)}")  # fmt: skip
        case r.Running():
            return f"running on {_worker(reason.owner)}{_at(' since ', reason.since)}"
        case r.RunParallelFull():
            return f"the run's max_parallel is full ({reason.out} of {reason.limit} out)"
        case r.MapParallelFull():
            return (f"{reason.left} items wait: the map's max_parallel is full "
                    f"({reason.out} of {reason.limit} out)")  # fmt: skip
        case r.RunFailing():
            return f"will not start: the run is failing ({reason.reason})"
        case r.Stalled():
            return f"stalled: {reason.detail}"
    assert_never(reason)
