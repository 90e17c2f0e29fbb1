"""``keel schedules`` and ``keel schedule pause|unpause|trigger-now|backfill``: the
deployed workflows' schedules, on the database (the workers fire them).

A backfill fires each slot of a range as the workers would have: its key is the slot,
so slots fired already (by workers or an earlier backfill) start nothing again.
"""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer

from keel.cli.common import DbOption, JsonOption, fail, opened_store, reported_errors

if TYPE_CHECKING:
    from keel.runtime.triggers.firing import Armed
    from keel.spec.triggers import ScheduleTrigger
    from keel.store.protocol import Store

#: next fire times shown per schedule
SHOWN = 3
#: the most slots one backfill fires
MOST_SLOTS = 10_000

schedule_app = typer.Typer(help="Pause, unpause, trigger or backfill a schedule.",
                           no_args_is_help=True)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command()(schedules)
    app.add_typer(schedule_app, name="schedule")


@dataclass(frozen=True, slots=True)
class Live:
    name: str
    armed: Armed
    trigger: ScheduleTrigger


def _live(store: Store) -> list[Live]:
    from keel.runtime.runs import RunCache
    from keel.runtime.triggers.firing import active
    from keel.runtime.triggers.schedules import schedule_names
    from keel.spec.triggers import ScheduleTrigger

    found = []
    for armed in active(store, RunCache(store), "schedule"):
        assert isinstance(armed.trigger, ScheduleTrigger)
        found.append(Live(schedule_names(armed.spec)[armed.index], armed, armed.trigger))
    return sorted(found, key=lambda live: live.name)


def _named(store: Store, name: str) -> Live:
    for live in _live(store):
        if live.name == name:
            return live
    raise fail(f"no deployed schedule is named '{name}' (see `keel schedules`)")


def _now(store: Store) -> float:
    from keel.runtime.clock import clock_for

    return clock_for(store).now()


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def schedules(as_json: JsonOption = False, db: DbOption = None) -> None:
    """The deployed workflows' schedules: cron, zone, next fire times (in the
    schedule's zone and UTC), paused or not."""
    from itertools import islice

    from rich.console import Console

    from keel.cli.layout import Cell, Column, print_table
    from keel.runtime.triggers.schedules import slot_key, slots_after, zoned_time

    with opened_store(db) as store, reported_errors():
        now = _now(store)
        states = {state.name: state for state in store.schedules()}
        lives = _live(store)
    shown: list[dict[str, Any]] = []
    for live in lives:
        state = states.get(live.name)
        upcoming = list(islice(slots_after(live.trigger, now), SHOWN))
        shown.append({
            "name": live.name, "workflow": live.armed.spec.name, "cron": live.trigger.cron,
            "timezone": live.trigger.timezone, "paused": bool(state and state.paused),
            "paused_by": state.paused_by if state else None,
            "last_slot": slot_key(state.last_slot) if state and state.last_slot else None,
            "next": [{"local": zoned_time(live.trigger, slot), "utc": slot_key(slot)}
                     for slot in upcoming],
        })  # fmt: skip
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
    with opened_store(db) as store, reported_errors():
        live = _named(store, name)
        store.pause_schedule(name, live.armed.spec.name, paused, _now(store), getpass.getuser())
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
    from keel.runtime.triggers.firing import Firing, fire

    with opened_store(db) as store, reported_errors():
        live = _named(store, name)
        key = "now:" + datetime.fromtimestamp(time.time(), UTC).isoformat()
        run, _ = fire(store, live.armed.spec, dict(live.trigger.input),
                      Firing("schedule", name, key))  # fmt: skip
    typer.echo(run.id)


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
    from itertools import islice

    from keel.runtime.triggers.firing import Firing, fire
    from keel.runtime.triggers.schedules import slot_key, slots_between

    with opened_store(db) as store, reported_errors():
        live = _named(store, name)
        first = _instant(start, live.trigger.timezone, "--from")
        last = _instant(end, live.trigger.timezone, "--to", end=True)
        if last < first:
            raise fail(f"--to ({end}) is before --from ({start})")
        slots = list(islice(slots_between(live.trigger, first, last), MOST_SLOTS + 1))
        if len(slots) > MOST_SLOTS:
            raise fail(f"more than {MOST_SLOTS} slots in that range: backfill it in parts")
        started: list[dict[str, Any]] = []
        for slot in slots:
            run, new = fire(store, live.armed.spec, dict(live.trigger.input),
                            Firing("schedule", name, slot_key(slot)))  # fmt: skip
            started.append({"slot": slot_key(slot), "run": run.id, "started": new})
    if as_json:
        typer.echo(json.dumps(started, indent=2))
        return
    fresh = sum(item["started"] for item in started)
    slots_word = "slot" if len(slots) == 1 else "slots"
    runs_word = "run" if fresh == 1 else "runs"
    typer.echo(f"{len(slots)} {slots_word}: {fresh} {runs_word} started, "
               f"{len(slots) - fresh} fired already")  # fmt: skip
