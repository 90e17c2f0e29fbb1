"""Commands for runs that failed: list them with what failed (``keel failed``), continue
them from the failed nodes (``keel retry``), or give a node its output by hand
(``keel skip``). Manual actions record who did them (``--by``, default the OS user; with
``KEEL_SERVER_URL`` the token's name). Continuing a run here needs the database; with a
server, ``--detach`` leaves it to the server's workers."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from keel.cli.common import (
    DbOption,
    JsonOption,
    client_now,
    fail,
    local_time,
    needs_database,
    opened_client,
    parse_json,
    reported_errors,
)
from keel.cli.resume_code import load_recorded

RunArgument = Annotated[str, typer.Argument(help="Run id or unique prefix")]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Who does this, for the history (default: OS user)")
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why, for the history")]
DetachOption = Annotated[
    bool,
    typer.Option("--detach", "-d", help="Only record it; a `keel resume` (or worker) runs it"),
]
YesOption = Annotated[
    bool,
    typer.Option("--yes", "-y", help="Load the code the run recorded without asking"),
]


def register(app: typer.Typer) -> None:
    app.command()(failed)
    app.command()(retry)
    app.command()(skip)
    app.command()(circuits)


def circuits(as_json: JsonOption = False, db: DbOption = None) -> None:
    """Circuit breakers that counted failures: open ones hold back the attempts that
    need them until their cool-down ends."""
    with opened_client(db) as client, reported_errors():
        found = client.circuits()
        now = client_now(client)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    if not found:
        typer.echo("no circuit has counted failures")
        return
    from rich.console import Console

    from keel.cli.layout import Cell, Column, print_table

    table: list[list[Cell]] = []
    for circuit in found:
        open_until, probe_until = circuit["open_until"], circuit["probe_until"]
        if probe_until is not None and probe_until > now:
            state = "half-open: a probe is running"
        elif open_until is not None and open_until > now:
            state = f"open until {local_time(open_until)}"
        elif open_until is not None:
            state = "half-open: the next attempt is the probe"
        else:
            state = "closed"
        table.append([circuit["name"], str(circuit["failures"]), state])
    columns = [Column("circuit"), Column("failures in a row", justify="right"),
               Column("state", role="long", wrap=True)]  # fmt: skip
    print_table(Console(), columns, table)


def retry(
    run_id: RunArgument,
    node: Annotated[
        str | None, typer.Option("--node", help="Re-run only this node and what depends on it")
    ] = None,
    by: ByOption = None,
    reason: ReasonOption = "",
    detach: DetachOption = False,
    yes: YesOption = False,
    db: DbOption = None,
) -> None:
    """Continue a failed run from its failed nodes; succeeded nodes are not run again.

    Then run it here, as `keel resume` would (exit 1 if it fails again).
    """
    if not detach:
        needs_database(db, "keel retry (without --detach)")
    with opened_client(db, by=by, local=not detach) as client, reported_errors():
        record = client.retry(run_id, node=node, by=by, reason=reason)
    typer.echo(f"run {record.id[:8]} retried", err=True)
    if not detach:
        _continue(record.id, db, yes=yes)


def skip(
    run_id: RunArgument,
    node: Annotated[str, typer.Argument(help="The node to mark done")],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            help="The node's output as JSON (or @file.json), checked against the node's "
            "return type; quote text: '\"done\"'",
        ),
    ] = "null",
    by: ByOption = None,
    reason: ReasonOption = "",
    detach: DetachOption = False,
    yes: YesOption = False,
    db: DbOption = None,
) -> None:
    """Mark a node done by hand with the given output; the run goes on from there.

    On a failed run, what else failed is retried too, and the run is continued here.
    """
    value = parse_json(output, "--output")
    if not detach:
        needs_database(db, "keel skip (without --detach)")
    with opened_client(db, by=by, local=not detach) as client, reported_errors():
        found = client.run(run_id)
        before = found.status
        if client.store is not None:
            # its tasks, to check the output against their return types: the code the
            # run recorded, once the user confirms it (keel.cli.resume_code); a server
            # checks against the code it loaded
            unloaded = load_recorded(found, yes=yes)
            if unloaded:
                raise fail(f"keel skip: the output is checked against the task's type: "
                           f"{unloaded}")  # fmt: skip
        record = client.skip(run_id, node, value, by=by, reason=reason)
    typer.echo(f"run {record.id[:8]}: {node} set by hand", err=True)
    if before == "failed" and not detach:
        _continue(record.id, db, yes=yes)


def _continue(run_id: str, db: str | None, *, yes: bool) -> None:
    from keel.cli.run_commands import continue_run

    continue_run(run_id, db, yes=yes)


def failed(
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first")] = 20,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """List failed runs, newest first, with the node that failed and its error."""
    from rich.console import Console
    from rich.text import Text

    from keel.cli.layout import Cell, Column, print_table

    with opened_client(db) as client, reported_errors():
        found = client.failed(workflow=workflow, limit=limit)
    if as_json:
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    console = Console()
    if not found:
        console.print("no failed runs")
        return
    columns = [
        Column("run"), Column("workflow"), Column("failed", role="extra"), Column("node"),
        Column("attempts", justify="right"), Column("error", role="long", wrap=True, min_width=24),
    ]  # fmt: skip
    table: list[list[Cell]] = []
    for item in found:
        failure = item["error"]
        error = (
            f"{failure['type']}: {failure['message']}"
            if failure is not None
            else item["reason"] or ""
        )
        table.append([
            item["id"][:8], item["workflow"], local_time(item["failed_at"]),
            item["node"] or "", str(item["attempts"] or ""), Text(error, style="red"),
        ])  # fmt: skip
    print_table(console, columns, table)
