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
    from keel.store.records import RunRecord, StoredEvent

RunArgument = Annotated[str, typer.Argument(help="Run id or unique prefix")]


def register(app: typer.Typer) -> None:
    app.command()(runs)
    app.command()(show)
    app.command()(history)
    app.command()(verify)


def _short(value: Any, width: int = 48) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _record_data(record: RunRecord) -> dict[str, Any]:
    return {
        "id": record.id, "workflow": record.workflow, "status": record.status,
        "spec_version": record.spec_version, "created_at": record.created_at,
        "updated_at": record.updated_at, "input": record.input, "output": record.output,
        "reason": record.reason, "events": record.last_seq, "origin": record.origin,
        "parent_run": record.parent_run, "parent_node": record.parent_node,
    }  # fmt: skip


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
    """List runs, newest first."""
    from rich.console import Console
    from rich.table import Table

    from keel.cli.progress import status_symbol

    known = ("pending", "running", "failing", "paused", "succeeded", "failed", "cancelled")
    if status is not None and status not in known:
        typer.echo(f"unknown status '{status}': use one of {', '.join(known)}", err=True)
        raise typer.Exit(2)
    with opened_store(db) as store, reported_errors():
        records = store.list_runs(status=status, workflow=workflow, limit=limit)
    if as_json:
        typer.echo(json.dumps([_record_data(r) for r in records], indent=2))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("run", "workflow", "status", "started", "updated", "events", "parent"):
        table.add_column(column)
    for record in records:
        table.add_row(
            record.id[:8], record.workflow, status_symbol(record.status) + f" {record.status}",
            local_time(record.created_at), local_time(record.updated_at), str(record.last_seq),
            record.parent_run[:8] if record.parent_run else "",
        )  # fmt: skip
    Console().print(table if records else "no runs")


def show(run_id: RunArgument, as_json: JsonOption = False, db: DbOption = None) -> None:
    """A run's status, input and output, and per node: status, attempts, duration, input,
    output or error. What a waiting run is waiting for is shown as running nodes."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from keel.cli.progress import seconds, status_symbol
    from keel.runtime.report import describe_wait, run_report
    from keel.runtime.runs import RunCache

    with opened_store(db) as store, reported_errors():
        record = store.get_run(run_id)
        plan = RunCache(store).plan(record.spec_version)
        report = run_report(plan, store.history(record.id))
        leases = {(lease.node, lease.item): lease for lease in store.leases(record.id)}
        children = store.list_runs(parent=record.id, limit=1_000)
    if as_json:
        data = _record_data(record)
        data["nodes"] = [
            {
                "id": node.id, "status": node.status, "attempts": node.attempts,
                "reclaimed": node.reclaimed, "started_at": node.started_at,
                "ended_at": node.ended_at, "input": node.args, "output": node.output,
                "error": None if node.error is None else {
                    "type": node.error.type, "message": node.error.message},
                "reason": node.reason, "items": node.items, "items_done": node.items_done,
                "retry_at": node.retry_at,
                "waits_for": node.waits_for if node.status == "awaiting" else None,
                "wait": node.wait, "until": node.until, "decision": node.decision,
            }
            for node in report.nodes.values()
        ]  # fmt: skip
        data["parent"] = (None if record.parent_run is None else
                          {"run_id": record.parent_run, "node": record.parent_node})  # fmt: skip
        data["children"] = [child.id for child in children]
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    console = Console()
    console.print(f"[bold]{record.workflow}[/bold] · run {record.id}")
    console.print(
        f"  status    {record.status}"
        + (f" in {seconds(report.duration)}" if report.duration is not None else "")
    )
    console.print(
        f"  version   {record.spec_version[:12]}   started {local_time(record.created_at)}"
    )
    console.print(f"  input     {_short(record.input, 100)}")
    if record.status == "succeeded":
        console.print(f"  output    {_short(record.output, 100)}")
    if record.reason:
        console.print(f"  reason    {record.reason}", style="red")
    if record.parent_run is not None:
        console.print(f"  parent    run {record.parent_run} (node {record.parent_node})")
    for child in children:
        console.print(f"  child     run {child.id} {child.workflow} ({child.status})")
    waiting = [node for node in report.nodes.values() if node.status == "awaiting"]
    for node in waiting:
        console.print(f"  waits for {describe_wait(node, record.id)}", style="yellow",
                      markup=False, highlight=False)  # fmt: skip
    table = Table(box=None, pad_edge=False)
    for column in ("", "node", "status", "attempts", "duration"):
        table.add_column(column)
    for column in ("input", "output / error"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", ratio=1)
    for node in report.nodes.values():
        if node.status == "awaiting":
            result = f"[yellow]{escape(describe_wait(node, record.id))}[/yellow]"
        elif node.decision is not None and node.status in ("succeeded", "failed"):
            result = escape(node.decision)
        elif node.error is not None and node.status == "failed":
            result = f"[red]{node.error.type}: {node.error.message}[/red]"
        elif node.reason:
            result = f"[dim]{node.reason}[/dim]"
        elif node.retry_at is not None and node.error is not None:
            result = (f"[yellow]retry at {local_time(node.retry_at)}[/yellow] after "
                      f"{node.error.type}: {node.error.message}")  # fmt: skip
        elif node.items is not None and node.status != "succeeded":
            result = f"{node.items_done}/{node.items} items"
        else:
            result = _short(node.output) if node.status == "succeeded" else ""
        status = node.status
        held = leases.get((node.id, None))
        if held is not None:
            status += f" (on {held.owner.split(':')[0]}:{held.owner.split(':')[1]})"
        attempts = str(node.attempts or "")
        if node.reclaimed:
            attempts += f" ({node.reclaimed} reclaimed)"
        table.add_row(
            status_symbol(node.status), node.id, status, attempts, seconds(node.duration),
            _short(node.args) if node.args is not None else "", result,
        )  # fmt: skip
    console.print(table)


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
    from rich.table import Table

    with opened_store(db) as store, reported_errors():
        record = store.get_run(run_id)
        events = store.history(record.id)
    if node is not None:
        events = [e for e in events if getattr(e.event, "node", None) == node]
    if as_json:
        for stored in events:
            typer.echo(json.dumps(_event_line(stored), ensure_ascii=False))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("seq", "time", "event", "node"):
        table.add_column(column, no_wrap=True)
    table.add_column("details", no_wrap=True, overflow="ellipsis", ratio=1)
    for stored in events:
        data = _event_line(stored)
        for key in ("seq", "at", "prev_hash", "kind", "node"):
            data.pop(key, None)
        details = ", ".join(f"{k}={_short(v, 40)}" for k, v in data.items() if v is not None)
        table.add_row(
            str(stored.seq), local_time(stored.at), stored.event.kind,
            getattr(stored.event, "node", "") or "", details,
        )  # fmt: skip
    Console().print(table)


def verify(
    run_ids: Annotated[list[str] | None, typer.Argument(help="Runs to check")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Check every run")] = False,
    db: DbOption = None,
) -> None:
    """Check the hash chain of runs' histories; exit 1 if any event was edited, removed
    or reordered. Prints each run's head hash: keep it elsewhere to anchor the chain."""
    from keel.store.chain import verify_chain

    if not run_ids and not all_runs:
        typer.echo("name runs to verify, or --all", err=True)
        raise typer.Exit(2)
    broken = False
    with opened_store(db) as store, reported_errors():
        records = (
            store.list_runs(limit=10_000_000)
            if all_runs
            else [store.get_run(run_id) for run_id in run_ids or []]
        )
        for record in records:
            report = verify_chain(
                record.id, store.chain_links(record.id), record.last_seq, record.head_hash
            )
            try:
                store.load_spec(record.spec_version)
            except Exception as exc:
                report = dataclasses.replace(report, problems=(*report.problems, str(exc)))
            if report.intact:
                typer.echo(f"✓ run {record.id}: {report.events} events intact, "
                           f"head {report.head_hash}")  # fmt: skip
            else:
                broken = True
                typer.echo(f"✗ run {record.id}: the history was altered", err=True)
                for problem in report.problems:
                    typer.echo(f"  {problem}", err=True)
    if broken:
        raise typer.Exit(1)
