"""The deployed schedules as people and the API see them: by name, with their state
and next fire times (``keel schedules``, ``GET /schedules``), and the acts on one
(pause, unpause, trigger now, backfill), shared by the API's routes and the store
transport of ``keel.Client`` (which the CLI acts through).

A backfill or a trigger-now is a person's act: its runs say so (``Asked``), and the
schedule's overlap policy, which concerns the runs its own slots started, leaves them
alone. They are still the schedule's (``started_by`` ``schedule:NAME``), and a
backfilled slot is the slot's one run whoever fires it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal

from keel.errors import InputError, WorkflowNotFoundError
from keel.runtime.runs import RunCache
from keel.runtime.triggers.firing import Armed, Firing, active, fire
from keel.runtime.triggers.schedules import (
    ASKED,
    schedule_names,
    slot_key,
    slots_after,
    slots_between,
    zoned_time,
)
from keel.spec.triggers import ScheduleTrigger
from keel.store.protocol import Store

if TYPE_CHECKING:  # prometheus_client is imported only by a process that counts
    from keel.runtime.metrics import Metrics

#: the most slots one backfill starts
MOST_SLOTS = 10_000
#: next fire times a schedule's document lists
SHOWN = 3


@dataclass(frozen=True, slots=True)
class Asked(Firing):
    """A schedule's firing a person asked for: keyed as the slot's own (a backfilled slot
    the workers fired already starts nothing), its document says ``via`` what."""

    via: Literal["backfill", "trigger-now"] = "backfill"

    def document(self) -> dict[str, str]:
        return {**Firing.document(self), ASKED: self.via}


@dataclass(frozen=True, slots=True)
class Live:
    name: str
    armed: Armed
    trigger: ScheduleTrigger


def live_schedules(store: Store, plans: RunCache) -> list[Live]:
    """The schedules of the deployed current versions, by name."""
    found = []
    for armed in active(store, plans, "schedule"):
        assert isinstance(armed.trigger, ScheduleTrigger)
        found.append(Live(schedule_names(armed.spec)[armed.index], armed, armed.trigger))
    return sorted(found, key=lambda live: live.name)


def named_schedule(store: Store, plans: RunCache, name: str) -> Live:
    for live in live_schedules(store, plans):
        if live.name == name:
            return live
    raise unknown_schedule(name)


def unknown_schedule(name: str) -> WorkflowNotFoundError:
    """The error for a name no deployed schedule has (one message wherever it is found
    missing: here, or in the list a client was given)."""
    return WorkflowNotFoundError(f"no deployed schedule is named '{name}' (see `keel schedules`)")


def schedule_documents(
    store: Store, plans: RunCache, now: float, shown: int = SHOWN
) -> list[dict[str, Any]]:
    """Each schedule with its state and its next ``shown`` fire times."""
    states = {state.name: state for state in store.schedules()}
    documents: list[dict[str, Any]] = []
    for live in live_schedules(store, plans):
        state = states.get(live.name)
        upcoming = list(islice(slots_after(live.trigger, now), shown))
        documents.append({
            "name": live.name, "workflow": live.armed.spec.name, "cron": live.trigger.cron,
            "timezone": live.trigger.timezone, "paused": bool(state and state.paused),
            "paused_by": state.paused_by if state else None,
            "last_slot": slot_key(state.last_slot) if state and state.last_slot else None,
            "next": [{"local": zoned_time(live.trigger, slot), "utc": slot_key(slot)}
                     for slot in upcoming],
        })  # fmt: skip
    return documents


def pause_schedule(
    store: Store, plans: RunCache, name: str, paused: bool, now: float, by: str | None
) -> None:
    """Pause (or unpause) the schedule ``name``: while paused its slots start nothing."""
    live = named_schedule(store, plans, name)
    store.pause_schedule(name, live.armed.spec.name, paused, now, by)


def trigger_now(
    store: Store, plans: RunCache, name: str, now: float, *, metrics: Metrics | None = None
) -> str:
    """Start a run of the schedule now, outside its slots (with its input); its id.
    ``metrics``: where to count the run started."""
    live = named_schedule(store, plans, name)
    key = "now:" + datetime.fromtimestamp(now, UTC).isoformat()
    run, new = fire(store, live.armed.spec, dict(live.trigger.input),
                    Asked("schedule", name, key, "trigger-now"), plans=plans)  # fmt: skip
    if new and metrics is not None:
        metrics.runs_started.labels(run.workflow).inc()
    return run.id


def backfill(
    store: Store,
    plans: RunCache,
    name: str,
    first: float,
    last: float,
    now: float,
    *,
    metrics: Metrics | None = None,
) -> list[dict[str, Any]]:
    """One run per slot from ``first`` to ``last`` (included); a slot fired already
    starts nothing. Each slot with its run and whether this started it. A range
    reaching past ``now`` is refused: a slot to come is the schedule's own to fire, at
    its time (started now, its run would be early, and the schedule's would find it).
    ``metrics``: where to count the runs started."""
    if last < first:
        raise InputError("the end of a backfill is before its start")
    if last > now:
        raise InputError(
            f"the backfill ends at {slot_key(last)}, after now ({slot_key(now)}): a backfill "
            "starts slots that have passed, the schedule fires the ones to come; end it "
            "at now or before"
        )
    live = named_schedule(store, plans, name)
    slots = list(islice(slots_between(live.trigger, first, last), MOST_SLOTS + 1))
    if len(slots) > MOST_SLOTS:
        raise InputError(f"more than {MOST_SLOTS} slots in that range: backfill it in parts")
    started: list[dict[str, Any]] = []
    for slot in slots:  # the slot is the firing: one fired with another input is fired
        run, new = fire(store, live.armed.spec, dict(live.trigger.input),
                        Asked("schedule", name, slot_key(slot)), plans=plans,
                        same_input=False)  # fmt: skip
        started.append({"slot": slot_key(slot), "run": run.id, "started": new})
        if new and metrics is not None:
            metrics.runs_started.labels(run.workflow).inc()
    return started
