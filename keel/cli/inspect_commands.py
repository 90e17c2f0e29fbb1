"""``keel runs``, ``keel show``, ``keel history`` and ``keel verify``: read runs back.

Everything shown is derived from the stored history (and the run's own stored
definition), so it is the same whichever process ran the run, and after a crash.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli.common import DbOption, JsonOption, local_time, opened_store, reported_errors

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from keel.runtime.views.activity import Activity
    from keel.runtime.views.report import NodeReport, RunReport
    from keel.store.records import StoredEvent

RunArgument = Annotated[str, typer.Argument(help="Run id or unique prefix")]


def register(app: typer.Typer) -> None:
    app.command()(runs)
    app.command()(show)
    app.command()(history)
    app.command()(verify)


def _short(value: Any, width: int = 48) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def runs(
    status: Annotated[
        str | None,
        typer.Option(
            help="Only runs with this status: running, failing, paused, succeeded, failed, "
            "cancelled"
        ),
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first")] = 20,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """List runs, newest first. A run that has not ended says what it is doing: running
    on a worker, queued with no worker to take it, or waiting (for an approval...)."""
    from rich.console import Console

    from keel.cli.layout import Cell, Column, print_table
    from keel.cli.progress import status_symbol
    from keel.runtime.clock import clock_for
    from keel.runtime.views.activity import run_activity
    from keel.runtime.views.documents import run_document

    known = ("pending", "running", "failing", "paused", "succeeded", "failed", "cancelled")
    if status is not None and status not in known:
        typer.echo(f"unknown status '{status}': use one of {', '.join(known)}", err=True)
        raise typer.Exit(2)
    with opened_store(db) as store, reported_errors():
        records = store.list_runs(status=status, workflow=workflow, limit=limit)
        now = clock_for(store).now()
        doing = {record.id: run_activity(store, record, now) for record in records}
    if as_json:
        listed = []
        for record in records:
            activity = doing[record.id]
            listed.append({**run_document(record),
                         "activity": None if activity is None else activity.text})  # fmt: skip
        typer.echo(json.dumps(listed, indent=2))
        return
    console = Console()
    if not records:
        console.print("no runs")
        return
    columns = [
        Column("run"), Column("workflow"), Column("status"), Column("started"),
        Column("events", role="extra", keep=1, justify="right"),
        Column("parent", role="extra", keep=2), Column("updated", role="extra"),
    ]  # fmt: skip
    table: list[list[Cell]] = []
    for record in records:
        activity = doing[record.id]
        symbol = status_symbol(_activity_symbol(record.status, activity))
        table.append([
            record.id[:8], record.workflow, symbol + f" {_status_words(record.status, activity)}",
            local_time(record.created_at), str(record.last_seq),
            record.parent_run[:8] if record.parent_run else "", local_time(record.updated_at),
        ])  # fmt: skip
    print_table(console, columns, table)


def _activity_symbol(status: str, activity: Activity | None) -> str:
    if activity is None or activity.kind == "running":
        return status
    return {"waiting": "awaiting", "queued": "pending"}.get(activity.kind, "stalled")


def _status_words(status: str, activity: Activity | None, *, full: bool = False) -> str:
    """A run's status as ``keel runs`` and ``keel show`` print it: what it is doing,
    rather than a bare "running"."""
    if activity is None:
        return status
    words = activity.text if full else activity.short
    return words if status == "running" else f"{status}: {words}"


def show(run_id: RunArgument, as_json: JsonOption = False, db: DbOption = None) -> None:
    """A run's status, input and output, and per node: status, attempts, the last
    attempt's duration, input, output or error. What a waiting run waits for comes
    first, with the command that ends the wait. All of it is read from the history."""
    from rich.console import Console
    from rich.text import Text

    from keel.cli.layout import Cell, Column, print_field, print_table
    from keel.cli.progress import retries, seconds, status_symbol
    from keel.runtime.clock import clock_for
    from keel.runtime.runs import RunCache
    from keel.runtime.views.activity import run_activity
    from keel.runtime.views.audit import summary_mismatches
    from keel.runtime.views.report import describe_wait, run_report

    if as_json:
        from keel.runtime.views.documents import run_detail

        with opened_store(db) as store, reported_errors():
            found = store.get_run(run_id)
            plan = RunCache(store).plan(found.spec_version)
            data = run_detail(store, found, plan, clock_for(store).now())
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    with opened_store(db) as store, reported_errors():
        record = store.get_run(run_id)
        plan = RunCache(store).plan(record.spec_version)
        report = run_report(plan, store.history(record.id))
        leases = {(lease.node, lease.item): lease for lease in store.leases(record.id)}
        children = store.list_runs(parent=record.id, limit=1_000)
        state = report.state
        # the history is the truth: the run's row is only checked against it
        activity = run_activity(store, dataclasses.replace(record, status=state.status.value),
                                clock_for(store).now())  # fmt: skip
    mismatches = summary_mismatches(record, state)
    console = Console()
    console.print(Text.assemble((record.workflow, "bold"), f" · run {record.id}"))
    took = "" if report.duration is None else f" in {seconds(report.duration)}"
    if took:
        took += _since_by_hand(report)
    print_field(console, "status", _status_words(state.status.value, activity, full=True) + took)
    print_field(console, "version", f"{record.spec_version[:12]}   started "
                                    f"{local_time(record.created_at)}")  # fmt: skip
    print_field(console, "input", _short(state.input, 100))
    if state.status.value == "succeeded":
        print_field(console, "output", _short(state.output, 100))
    if state.reason:
        print_field(console, "reason", state.reason, style="red")
    for mismatch in mismatches:
        print_field(console, "warning", f"{mismatch}; see `keel verify`", style="red")
    if record.parent_run is not None:
        print_field(console, "parent", f"run {record.parent_run} (node {record.parent_node})")
    for child in children:
        print_field(console, "child", f"run {child.id} {child.workflow} ({child.status})")
    for node in report.nodes.values():
        if node.status == "awaiting":
            print_field(console, "waits for", describe_wait(node, record.id), style="yellow")
            for line in _wait_notes(node):
                print_field(console, "", line)
    columns = [
        Column(""), Column("node"), Column("status"), Column("attempts"), Column("duration"),
        Column("input", role="long", min_width=16),
        Column("output / error", role="long", label="", min_width=24),
    ]  # fmt: skip
    rows: list[list[Cell]] = []
    for node in report.nodes.values():
        status = node.status.replace("_", " ")
        held = leases.get((node.id, None))
        if held is not None:
            status += f" (on {':'.join(held.owner.split(':')[:2])})"
        attempts = str(node.attempts or "")
        if node.items is not None and node.retries:  # a map: attempts is the highest one
            attempts += f" ({retries(node.retries)})"
        if node.reclaimed:
            attempts += f" ({node.reclaimed} reclaimed)"
        rows.append([
            status_symbol(node.status), node.id, status, attempts, seconds(node.duration),
            _short(node.args, 1000) if node.args is not None else "", _result(node),
        ])  # fmt: skip
    console.print()
    print_table(console, columns, rows)


def _since_by_hand(report: RunReport) -> str:
    """What a duration counts from when the run was changed by hand: its last
    ``keel retry`` or ``keel skip`` (a skip is not counted as a retry)."""
    said = []
    if report.retries:
        said.append("it was retried by hand" + ("" if report.retries == 1 else
                                                f" {report.retries} times"))  # fmt: skip
    if report.set_by_hand:
        nodes = list(dict.fromkeys(report.set_by_hand))
        said.append(f"{', '.join(nodes)} {'was' if len(nodes) == 1 else 'were'} set by hand")
    return f" (since {' and '.join(said)})" if said else ""


def _wait_notes(node: NodeReport) -> list[str]:
    """What an approver needs besides the title: the filled-in description, the form."""
    from keel.cli.forms import form_summary

    details = node.wait or {}
    notes = []
    if node.waits_for == "approval":
        if details.get("description"):
            notes.append(f"description: {details['description']}")
        form = details.get("form")
        if isinstance(form, dict) and form_summary(form):
            notes.append(f"form: {form_summary(form)} (give it with --data JSON)")
    return notes


def _result(node: NodeReport) -> Text:
    """A node's output, error, decision or what it waits for, in one cell."""
    from rich.text import Text

    from keel.cli.common import local_time

    if node.status == "awaiting":
        return Text(f"waits for {node.waits_for}: see above", style="yellow")
    if node.decision is not None and node.status in ("succeeded", "failed"):
        return Text(node.decision)
    if node.error is not None and node.status == "failed":
        return Text(f"{node.error.type}: {node.error.message}", style="red")
    if node.reason:
        return Text(node.reason, style="dim")
    if node.retry_at is not None and node.error is not None:
        return Text.assemble((f"retry at {local_time(node.retry_at)}", "yellow"),
                             f" after {node.error.type}: {node.error.message}")  # fmt: skip
    if node.items is not None and node.status != "succeeded":
        return Text(f"{node.items_done}/{node.items} items")
    return Text(_short(node.output, 1000) if node.status == "succeeded" else "")


def _event_line(stored: StoredEvent) -> dict[str, Any]:
    from keel.engine.events import to_data

    return {"seq": stored.seq, "at": stored.at, "prev_hash": stored.prev_hash,
            **to_data(stored.event)}  # fmt: skip


def history(
    run_id: RunArgument,
    node: Annotated[str | None, typer.Option(help="Only events of this node")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The run's events in order: the complete record of what happened and when."""
    from rich.console import Console

    from keel.cli.common import fail
    from keel.cli.layout import Cell, Column, print_table
    from keel.engine.events import node_of
    from keel.runtime.runs import RunCache

    with opened_store(db) as store, reported_errors():
        record = store.get_run(run_id)
        events = store.history(record.id)
        if node is not None:
            nodes = RunCache(store).plan(record.spec_version).nodes
            if node not in nodes:
                raise fail(f"run {record.id[:8]} has no node '{node}' "
                           f"(nodes: {', '.join(nodes)})")  # fmt: skip
    if node is not None:
        events = [e for e in events if node_of(e.event) == node]
    if as_json:
        for stored in events:
            typer.echo(json.dumps(_event_line(stored), ensure_ascii=False))
        return
    columns = [Column("seq", justify="right"), Column("time"), Column("event"), Column("node"),
               Column("details", role="long", min_width=20, label="")]  # fmt: skip
    rows: list[list[Cell]] = []
    for stored in events:
        data = _event_line(stored)
        for key in ("seq", "at", "prev_hash", "kind", "node"):
            data.pop(key, None)
        details = ", ".join(f"{k}={_short(v, 40)}" for k, v in data.items() if v is not None)
        rows.append([
            str(stored.seq), local_time(stored.at), stored.event.kind,
            node_of(stored.event) or "", details,
        ])  # fmt: skip
    print_table(Console(), columns, rows)


def verify(
    run_ids: Annotated[list[str] | None, typer.Argument(help="Runs to check")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Check every run")] = False,
    db: DbOption = None,
) -> None:
    """Check the hash chain of runs' histories, and that each run's status, output,
    reason and input in the runs table are what its history says; exit 1 if any event
    was edited, removed or reordered, or a run's summary disagrees with its history.
    Prints each run's head hash: keep it elsewhere to anchor the chain."""
    from rich.console import Console

    from keel.runtime.runs import RunCache
    from keel.runtime.views.audit import verify_run

    out, err = Console(), Console(stderr=True)
    if not run_ids and not all_runs:
        typer.echo("name runs to verify, or --all", err=True)
        raise typer.Exit(2)
    broken = False
    with opened_store(db) as store, reported_errors():
        cache = RunCache(store, capacity=1)  # plans are shared; each state is read once
        records = (
            store.list_runs(limit=10_000_000)
            if all_runs
            else [store.get_run(run_id) for run_id in run_ids or []]
        )
        for record in records:
            report, mismatches = verify_run(store, record, cache.state)
            if report.intact and not mismatches:
                _print_intact(out.width, record.id, report.events, report.head_hash)
                continue
            broken = True
            if not report.intact:
                _print_wrapped(err, "✗ ", f"run {record.id}: the history was altered")
            else:
                _print_wrapped(err, "✗ ", f"run {record.id}: the runs table disagrees with "
                               "the history (the history is intact)")  # fmt: skip
            for problem in (*report.problems, *mismatches):
                _print_wrapped(err, "  ", problem)
    if broken:
        raise typer.Exit(1)


def _print_intact(width: int, run_id: str, events: int, head: str) -> None:
    """A verified run; its head hash whole, on a line of its own when the line would be
    wider than ``width`` (the hash is copied elsewhere to anchor the chain)."""
    said = f"✓ run {run_id}: {events} events intact,"
    typer.echo(f"{said} head {head}" if len(said) + len(head) + 6 <= width
               else f"{said}\n  head {head}")  # fmt: skip


def _print_wrapped(console: Console, head: str, text: str) -> None:
    from rich.text import Text

    from keel.cli.layout import hanging_lines

    for line in hanging_lines(console, Text(head), Text(text)):
        console.print(line, soft_wrap=True)
