"""Commands for runs that wait: the approvals waiting for a decision (``keel approvals``),
deciding them (``keel approve`` / ``keel reject``), sending a signal (``keel signal``),
and pausing a run (``keel pause`` / ``keel unpause``).

Each records an event naming who did it (``--by``, default the OS user; with
``KEEL_SERVER_URL`` the token's name) and what follows
from it, from any process: a worker executing the run (``keel run`` still waiting, or
``keel resume``) picks the run up from there.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli.common import (
    DbOption,
    JsonOption,
    fail,
    local_time,
    opened_client,
    parse_json,
    reported_errors,
)
from keel.cli.recovery_commands import ByOption, ReasonOption, RunArgument

if TYPE_CHECKING:
    from keel.runtime.client import Client
    from keel.store.records import RunRecord

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
    from keel.runtime.views.documents import wait_document

    with opened_client(db) as client, reported_errors():
        found = client.approvals(run_id=run_id)
    if assignee is not None:
        found = [w for w in found if assignee in (w.details.get("assignees") or [])
                 or w.details.get("role") == assignee]  # fmt: skip
    if as_json:
        rows = [wait_document(w) for w in found]
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not found:
        typer.echo("no approval is waiting")
        return
    from rich.console import Console
    from rich.text import Text

    from keel.cli.forms import form_summary
    from keel.cli.layout import Cell, Column, print_table

    columns = [
        Column("run"), Column("workflow", role="extra", keep=1), Column("node"),
        Column("title", role="long", wrap=True), Column("waiting since"),
        Column("assignees", role="extra", keep=2), Column("due", role="extra"),
        Column("description", role="under", wrap=True, label=""),
        Column("form", role="under", wrap=True),
    ]  # fmt: skip
    table: list[list[Cell]] = []
    for wait in found:
        who = ", ".join(wait.details.get("assignees") or []) or (wait.details.get("role") or "")
        run = wait.run_id[:8] + (" (paused)" if wait.run_status == "paused" else "")
        form = wait.details.get("form")
        table.append([
            run, wait.workflow, wait.node, str(wait.details.get("title", "")),
            local_time(wait.since), who, local_time(wait.until) if wait.until else "",
            str(wait.details.get("description") or ""),
            form_summary(form) if isinstance(form, dict) else "",
        ])  # fmt: skip
    console = Console()
    print_table(console, columns, table)
    console.print(Text("decide with: keel approve RUN NODE [--data JSON], or keel reject RUN NODE",
                       style="dim"))  # fmt: skip


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
    from keel.errors import InputError

    value = parse_json(data, "--data") if data is not None else None
    with opened_client(db, by=by, signing=True) as client, reported_errors():
        try:
            record = client.approve(run_id, node, data=value, comment=comment, by=by)
        except InputError as exc:  # the form's data is missing or wrong: say what it takes
            raise fail("\n".join([str(exc), *_form_help(client, run_id, node)])) from None
        idle = _nothing_executes(client, record)
    typer.echo(f"run {record.id[:8]}: {node} approved ({record.status})")
    _say_how_to_continue(idle)


def _form_help(client: Client, run_id: str, node: str) -> list[str]:
    """The fields of the form of approval ``node``, and how to give them."""
    from keel.cli.forms import form_help

    for wait in client.approvals(run_id=run_id):
        form = wait.details.get("form")
        if wait.node == node and isinstance(form, dict):
            return form_help(form, f"keel approve {wait.run_id[:8]} {node}")
    return []


def reject(
    run_id: RunArgument,
    node: NodeArgument,
    comment: CommentOption = "",
    by: ByOption = None,
    db: DbOption = None,
) -> None:
    """Reject a waiting approval: the node fails and its on_failure applies."""
    with opened_client(db, by=by, signing=True) as client, reported_errors():
        record = client.reject(run_id, node, comment=comment, by=by)
        idle = _nothing_executes(client, record)
    typer.echo(f"run {record.id[:8]}: {node} rejected ({record.status})")
    _say_how_to_continue(idle)


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
    value = parse_json(data, "--data")
    with opened_client(db, by=by) as client, reported_errors():
        record = client.signal(run_id, name, value, by=by)
        idle = _nothing_executes(client, record)
    typer.echo(f"run {record.id[:8]}: signal {name} delivered")
    _say_how_to_continue(idle)


def pause(run_id: RunArgument, reason: ReasonOption = "", by: ByOption = None,
          db: DbOption = None) -> None:  # fmt: skip
    """Pause a run: nothing new starts; attempts running now finish and are recorded."""
    with opened_client(db, by=by) as client, reported_errors():
        record = client.pause(run_id, reason=reason, by=by)
    typer.echo(f"run {record.id[:8]} paused; continue it with: keel unpause {record.id[:8]}")


def unpause(run_id: RunArgument, reason: ReasonOption = "", by: ByOption = None,
            db: DbOption = None) -> None:  # fmt: skip
    """Let a paused run go on from where it was."""
    with opened_client(db, by=by) as client, reported_errors():
        record = client.unpause(run_id, reason=reason, by=by)
        idle = _nothing_executes(client, record)
    typer.echo(f"run {record.id[:8]} unpaused ({record.status})")
    _say_how_to_continue(idle)


def _nothing_executes(client: Client, record: RunRecord) -> str | None:
    """After a change that lets a run go on: if its next steps are queued and no live
    process will take them (the ``keel run`` that waited was stopped, no ``keel worker``
    takes their queue), the run to resume (the top one: its children go with it).
    Only a store tells (over HTTP: None; the server's workers are not listed)."""
    store = client.store
    if store is None:
        return None
    from keel.runtime.clock import clock_for
    from keel.runtime.runs import RunCache
    from keel.runtime.views.activity import run_activity
    from keel.runtime.worker.presence import run_is_served

    now = clock_for(store).now()
    record = store.get_run(record.id)
    activity = run_activity(store, record, now)
    if activity is None or activity.kind != "queued":
        return None
    plan = RunCache(store).plan(record.spec_version)
    if run_is_served(store, record, {node.queue for node in plan.nodes.values()}, now):
        return None
    while record.parent_run is not None:
        record = store.get_run(record.parent_run)
    return record.id


def _say_how_to_continue(run_id: str | None) -> None:
    """Say that nothing executes ``run_id`` (from ``_nothing_executes``) and what to do."""
    if run_id is not None:
        typer.echo(
            f"queued, no worker is running it: continue with `keel resume {run_id[:8]}`\n"
            "(or start `keel worker`)",
            err=True,
        )
