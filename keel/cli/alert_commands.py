"""``keel alerts``: the alert rules of ``keel.toml`` as the evaluating process (a
``keel worker`` or ``keel serve``) last left them, from the database or through the
server ``KEEL_SERVER_URL`` names."""

from __future__ import annotations

import json

import typer

from keel.cli.common import DbOption, JsonOption, client_now, opened_client, reported_errors


def register(app: typer.Typer) -> None:
    app.command()(alerts)


def alerts(as_json: JsonOption = False, db: DbOption = None) -> None:
    """Alert rules with their state (ok, pending, firing), for how long, their last
    value and when it was read. The rules are \\[\\[alerts]] in keel.toml; keel worker
    and keel serve evaluate them (one process at a time)."""
    with opened_client(db) as client, reported_errors():
        found = client.alerts()
        now = client_now(client)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    if not found:
        typer.echo("no alert rule has been evaluated (rules are [[alerts]] in keel.toml, "
                   "evaluated by keel worker and keel serve)")  # fmt: skip
        return
    from rich.console import Console

    from keel.cli.layout import Cell, Column, print_table
    from keel.runtime.alerts.rules import shown_value
    from keel.spec.durations import format_duration

    def ago(at: float) -> str:
        return format_duration(max(0.0, now - at))

    table: list[list[Cell]] = []
    for item in found:
        table.append([item["name"], item["state"], shown_value(item["unit"], item["value"]),
                      ago(item["since"]), f"{ago(item['evaluated_at'])} ago",
                      item["condition"] or ""])  # fmt: skip
    columns = [Column("alert"), Column("state"), Column("value", justify="right"),
               Column("for", role="extra", keep=2), Column("checked", role="extra", keep=1),
               Column("condition", role="long", wrap=True)]  # fmt: skip
    print_table(Console(), columns, table)
