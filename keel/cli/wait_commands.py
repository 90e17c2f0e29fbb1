"""Commands for runs that wait: the approvals waiting for a decision (``keel approvals``),
deciding them (``keel approve`` / ``keel reject``), sending a signal (``keel signal``),
and pausing a run (``keel pause`` / ``keel unpause``).

Each records an event naming who did it (``--by``, default the OS user) and what follows
from it, from any process: a worker executing the run (``keel run`` still waiting, or
``keel resume``) picks the run up from there.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from keel.cli.common import (
    DbOption,
    JsonOption,
    local_time,
    opened_store,
    parse_json,
    reported_errors,
)
from keel.cli.recovery_commands import ByOption, ReasonOption, RunArgument

NodeArgument = Annotated[str, typer.Argument(help="The approval node's id")]
CommentOption = Annotated[str, typer.Option("--comment", help="Why, kept with the decision")]


def register(app: typer.Typer) -> None:
    app.command()(approvals)
    app.command()(approve)
    app.command()(reject)
    app.command()(signal)
    app.command()(pause)
    app.command()(unpause)


def approvals(
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run's")] = None,
    assignee: Annotated[
        str | None, typer.Option("--assignee", help="Only those assigned to this person or group")
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Approvals waiting for a decision, oldest first: run, node, title, since when."""
    from keel.runtime.client import Client

    with opened_store(db) as store, reported_errors():
        found = Client(store=store).approvals(run_id=run_id)
    if assignee is not None:
        found = [w for w in found if assignee in (w.details.get("assignees") or [])
                 or w.details.get("role") == assignee]  # fmt: skip
    if as_json:
        rows = [
            {"run_id": w.run_id, "workflow": w.workflow, "node": w.node, "since": w.since,
             "until": w.until, "run_status": w.run_status, **w.details}
            for w in found
        ]  # fmt: skip
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not found:
        typer.echo("no approval is waiting")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("run", "workflow", "node", "title", "waiting since", "assignees", "due"):
        table.add_column(column)
    for wait in found:
        who = ", ".join(wait.details.get("assignees") or []) or (wait.details.get("role") or "")
        run = wait.run_id[:8] + (" (paused)" if wait.run_status == "paused" else "")
        table.add_row(run, wait.workflow, wait.node, str(wait.details.get("title", "")),
                      local_time(wait.since), who,
                      local_time(wait.until) if wait.until else "")  # fmt: skip
    Console().print(table)


def approve(
    run_id: RunArgument,
    node: NodeArgument,
    data: Annotated[
        str | None,
        typer.Option("--data", help="The form's data as JSON (or @file.json); the node's output"),
    ] = None,
    comment: CommentOption = "",
    by: ByOption = None,
    db: DbOption = None,
) -> None:
    """Approve a waiting approval; the run goes on (the worker executing it continues)."""
    from keel.runtime.interventions import approve as approve_node

    value = parse_json(data, "--data") if data is not None else None
    with opened_store(db) as store, reported_errors():
        record = approve_node(store, run_id, node, data=value, comment=comment, by=by)
    typer.echo(f"run {record.id[:8]}: {node} approved ({record.status})")


def reject(
    run_id: RunArgument,
    node: NodeArgument,
    comment: CommentOption = "",
    by: ByOption = None,
    db: DbOption = None,
) -> None:
    """Reject a waiting approval: the node fails and its on_failure applies."""
    from keel.runtime.interventions import reject as reject_node

    with opened_store(db) as store, reported_errors():
        record = reject_node(store, run_id, node, comment=comment, by=by)
    typer.echo(f"run {record.id[:8]}: {node} rejected ({record.status})")


def signal(
    run_id: RunArgument,
    name: Annotated[str, typer.Argument(help="The signal's name")],
    data: Annotated[
        str, typer.Option("--data", help="The signal's data as JSON (or @file.json)")
    ] = "null",
    by: ByOption = None,
    db: DbOption = None,
) -> None:
    """Send a named signal to a run; the signal node waiting for it (now or later) takes
    its data as output."""
    from keel.runtime.interventions import send_signal

    value = parse_json(data, "--data")
    with opened_store(db) as store, reported_errors():
        record = send_signal(store, run_id, name, value, by=by)
    typer.echo(f"run {record.id[:8]}: signal {name} delivered")


def pause(run_id: RunArgument, reason: ReasonOption = "", by: ByOption = None,
          db: DbOption = None) -> None:  # fmt: skip
    """Pause a run: nothing new starts; attempts running now finish and are recorded."""
    from keel.runtime.interventions import pause_run

    with opened_store(db) as store, reported_errors():
        record = pause_run(store, run_id, reason=reason, by=by)
    typer.echo(f"run {record.id[:8]} paused; continue it with: keel unpause {record.id[:8]}")


def unpause(run_id: RunArgument, reason: ReasonOption = "", by: ByOption = None,
            db: DbOption = None) -> None:  # fmt: skip
    """Let a paused run go on from where it was."""
    from keel.runtime.interventions import unpause_run

    with opened_store(db) as store, reported_errors():
        record = unpause_run(store, run_id, reason=reason, by=by)
    typer.echo(f"run {record.id[:8]} unpaused ({record.status})")
