"""``keel schedules`` and ``keel schedule pause|unpause|trigger-now|backfill``: the
deployed workflows' schedules, on the database (the workers fire them) or through the
server ``KEEL_SERVER_URL`` names.

A backfill fires each slot of a range as the workers would have: its key is the slot,
so slots fired already (by workers or an earlier backfill) start nothing again.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer

from keel.cli.common import DbOption, JsonOption, fail, opened_client, reported_errors

if TYPE_CHECKING:
    from keel.runtime.client import Client

schedule_app = typer.Typer(help="Pause, unpause, trigger or backfill a schedule.",
                           no_args_is_help=True)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command()(schedules)
    app.add_typer(schedule_app, name="schedule")


def _zone(client: Client, name: str) -> str:
    """The time zone of the schedule ``name`` (an error naming it if there is none)."""
    from keel.runtime.triggers.schedule_views import unknown_schedule

    for item in client.schedules():
        if item["name"] == name:
            zone: str = item["timezone"]
            return zone
    raise unknown_schedule(name)


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def schedules(as_json: JsonOption = False, db: DbOption = None) -> None:
    """The deployed workflows' schedules: cron, zone, next fire times (in the
    schedule's zone and UTC), paused or not."""

    from rich.console import Console

    from keel.cli.layout import Cell, Column, print_table

    with opened_client(db) as client, reported_errors():
        shown = client.schedules()
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
        return
    if not shown:
        typer.echo("no deployed workflow has a schedule (see `keel deploy`)")
        return
    table: list[list[Cell]] = []
    for item in shown:
        upcoming = item["next"][:1]  # the rest are in --json
        nexts = [f"{n['local']} = {_utc(slot_of(n))}" for n in upcoming]
        table.append([item["name"], item["workflow"], item["cron"], item["timezone"],
                      "paused" if item["paused"] else "", "".join(nexts)])  # fmt: skip
    columns = [Column("name"), Column("workflow", role="extra", keep=1), Column("cron"),
               Column("zone", role="extra", keep=2), Column("paused"),
               Column("next", role="under", label="next")]  # fmt: skip
    print_table(Console(), columns, table)


def slot_of(item: dict[str, str]) -> float:
    from keel.runtime.triggers.schedules import slot_of_key

    return slot_of_key(item["utc"])


def _pause(name: str, paused: bool, db: str | None) -> None:
    with opened_client(db) as client, reported_errors():
        who = None if client.remote else getpass.getuser()  # a server records its token's name
        if paused:
            client.pause_schedule(name, by=who)
        else:
            client.unpause_schedule(name, by=who)
    typer.echo(f"schedule {name} {'paused' if paused else 'unpaused'}")


@schedule_app.command("pause")
def pause(name: Annotated[str, typer.Argument(help="The schedule")], db: DbOption = None) -> None:
    """Pause a schedule: its slots start nothing until it is unpaused."""
    _pause(name, True, db)


@schedule_app.command("unpause")
def unpause(name: Annotated[str, typer.Argument(help="The schedule")], db: DbOption = None) -> None:
    """Unpause a schedule; slots missed while paused follow its catch_up policy."""
    _pause(name, False, db)


@schedule_app.command("trigger-now")
def trigger_now(
    name: Annotated[str, typer.Argument(help="The schedule")], db: DbOption = None
) -> None:
    """Start a run of the schedule now, outside its slots (with its input)."""
    with opened_client(db) as client, reported_errors():
        run_id = client.trigger_schedule(name)
    typer.echo(run_id)


def _instant(text: str, zone: str, what: str, *, end: bool = False) -> float:
    """An ISO time; without an offset, in the schedule's zone. A date alone is its
    start, or with ``end`` its whole day (``--to 2026-11-30`` includes that day)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{what}: not an ISO time: {text!r} (e.g. 2026-03-01T00:00)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(zone))
    if end and "T" not in text and " " not in text.strip():  # a date: through its end
        parsed += timedelta(days=1) - timedelta(microseconds=1)
    return parsed.timestamp()


@schedule_app.command("backfill")
def backfill(
    name: Annotated[str, typer.Argument(help="The schedule")],
    start: Annotated[str, typer.Option("--from", help="ISO time (no offset: the schedule's zone)")],
    end: Annotated[str, typer.Option("--to", help="ISO time or date, included")],
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Start one run per slot from --from to --to; slots fired already start nothing."""
    with opened_client(db) as client, reported_errors():
        zone = _zone(client, name)
        first = _instant(start, zone, "--from")
        last = _instant(end, zone, "--to", end=True)
        if last < first:
            raise fail(f"--to ({end}) is before --from ({start})")
        started = client.backfill(name, first, last)
    if as_json:
        typer.echo(json.dumps(started, indent=2))
        return
    fresh = sum(item["started"] for item in started)
    slots_word = "slot" if len(started) == 1 else "slots"
    runs_word = "run" if fresh == 1 else "runs"
    typer.echo(f"{len(started)} {slots_word}: {fresh} {runs_word} started, "
               f"{len(started) - fresh} fired already")  # fmt: skip
