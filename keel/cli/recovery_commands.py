"""Commands for runs that failed: list them with what failed (``keel failed``). Retrying
a failed run and marking a node done by hand come with the rest of failure handling."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from keel.cli.common import DbOption, JsonOption, local_time, opened_store, reported_errors


def register(app: typer.Typer) -> None:
    app.command()(failed)


def failed(
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first")] = 20,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """List failed runs, newest first, with the node that failed and its error."""
    from rich.console import Console
    from rich.table import Table

    from keel.runtime.failures import failed_runs

    with opened_store(db) as store, reported_errors():
        found = failed_runs(store, workflow=workflow, limit=limit)
    if as_json:
        rows = [
            {
                "id": item.record.id, "workflow": item.record.workflow,
                "failed_at": item.record.updated_at, "node": item.node,
                "attempts": item.attempts, "reason": item.record.reason,
                "error": None if item.error is None else {
                    "type": item.error.type, "message": item.error.message},
            }
            for item in found
        ]  # fmt: skip
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("run", "workflow", "failed", "node", "attempts"):
        table.add_column(column, no_wrap=True)  # the error column gives way first
    table.add_column("error", overflow="fold")
    for item in found:
        error = (
            f"{item.error.type}: {item.error.message}"
            if item.error is not None
            else item.record.reason or ""
        )
        table.add_row(
            item.record.id[:8], item.record.workflow, local_time(item.record.updated_at),
            item.node or "", str(item.attempts or ""), f"[red]{error}[/red]",
        )  # fmt: skip
    Console().print(table if found else "no failed runs")
