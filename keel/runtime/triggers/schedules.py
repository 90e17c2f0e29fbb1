"""When a schedule fires: its slots, computed with cronsim in the schedule's IANA time
zone (so 09:00 stays 09:00 across DST, a slot in the hour skipped by spring-forward is
cronsim's, and the hour repeated by fall-back fires as often as it happens), kept as
UTC instants.

Pure: the caller gives ``now`` (the run clock's, the database's with PostgreSQL, so
every host agrees). A slot's firing key is its UTC ISO time; that key makes its run id,
so a slot starts one run whoever fires it and however often. ``last_slot`` (the store's
``schedules`` row) only bounds what counts as missed.

Jitter delays when a slot is fired, by a delay derived from a hash of the schedule's
name and the slot (the same on every host), never its key.

A slot that came while the previous run went (``overlap="queue"``) waited: it is never
missed, however long that run took; once it ended, ``catch_up`` picks which of the
slots that waited fire (``due``'s ``held_until``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from cronsim import CronSim

from keel.spec.model import WorkflowSpec
from keel.spec.triggers import ScheduleTrigger

#: how late a slot may still be fired under ``catch_up="skip"`` (and for a schedule
#: never fired before): a worker that was busy is late, not absent
GRACE = 15.0
#: the field of a schedule run's trigger document that says a person asked for it
#: (``"backfill"``, ``"trigger-now"``), not the schedule's own clock: overlap leaves
#: such runs alone
ASKED = "via"


def schedule_names(spec: WorkflowSpec) -> dict[int, str]:
    """Each schedule trigger's name by its index in ``spec.triggers``: its own ``name``,
    else the workflow's name, ``NAME#2``, ``NAME#3``... for its further schedules."""
    names: dict[int, str] = {}
    count = 0
    for index, trigger in enumerate(spec.triggers):
        if not isinstance(trigger, ScheduleTrigger):
            continue
        count += 1
        if trigger.name is not None:
            names[index] = trigger.name
        else:
            names[index] = spec.name if count == 1 else f"{spec.name}#{count}"
    return names


def slot_key(slot: float) -> str:
    """The firing key of a slot: its UTC time in ISO 8601 (``2026-03-29T01:00:00Z``)."""
    text = datetime.fromtimestamp(slot, UTC).isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


def slot_of_key(key: str) -> float:
    """The slot a firing key names (``slot_key``'s inverse)."""
    return datetime.fromisoformat(key.replace("Z", "+00:00")).timestamp()


def _zoned(trigger: ScheduleTrigger, at: float) -> datetime:
    return datetime.fromtimestamp(at, ZoneInfo(trigger.timezone))


def slots_after(trigger: ScheduleTrigger, after: float) -> Iterator[float]:
    """The slots strictly after ``after``, oldest first (UTC timestamps)."""
    for slot in CronSim(trigger.cron, _zoned(trigger, after)):
        yield slot.timestamp()


def slots_before(trigger: ScheduleTrigger, until: float) -> Iterator[float]:
    """The slots at or before ``until``, newest first (UTC timestamps)."""
    for slot in CronSim(trigger.cron, _zoned(trigger, until + 1.0), reverse=True):
        at = slot.timestamp()
        if at <= until:
            yield at


def slots_between(trigger: ScheduleTrigger, start: float, end: float) -> Iterator[float]:
    """The slots in ``[start, end]``, oldest first."""
    for slot in slots_after(trigger, start - 1.0):
        if slot > end:
            return
        if slot >= start:
            yield slot


def jitter_of(name: str, trigger: ScheduleTrigger, slot: float) -> float:
    """The delay before ``slot`` of schedule ``name`` is fired: from a hash, so every
    host waits the same; 0 without ``jitter``."""
    if not trigger.jitter:
        return 0.0
    digest = hashlib.sha256(f"{name}\0{slot_key(slot)}".encode()).digest()
    return trigger.jitter * int.from_bytes(digest[:8], "big") / 2.0**64


def due(
    trigger: ScheduleTrigger,
    last_slot: float | None,
    now: float,
    name: str = "",
    held_until: float | None = None,
) -> list[float]:
    """The slots to fire at ``now``, oldest first: those after ``last_slot`` whose time
    (plus jitter) has come, as ``catch_up`` says. A slot fired late by less than
    ``GRACE`` is on time. A later one waited for the previous run when it is at or
    before ``held_until`` (``overlap="queue"``: the previous run ended then, or ``now``
    while it goes), else it was missed (no worker looked). Without a slot on time,
    ``latest`` fires the newest of those, ``skip`` the newest that waited (never a missed
    one); ``all`` fires each (the newest ``catch_up_limit``). A slot that waited fires
    without its jitter: the previous run's end spreads it. A schedule never fired
    (``last_slot`` None) has missed nothing."""
    jitter = trigger.jitter or 0.0
    policy = "skip" if last_slot is None else trigger.catch_up
    floor = last_slot if held_until is None or last_slot is None else max(last_slot, held_until)
    timely: list[float] = []
    missed: list[float] = []
    for slot in slots_before(trigger, now):
        if floor is not None and slot <= floor:
            break
        if slot + jitter < now - GRACE and (policy == "skip" or (policy == "latest" and timely)):
            break  # missed, and skip fires none of them, latest has a newer one
        fire_at = slot + jitter_of(name, trigger, slot)
        if fire_at > now:  # still waiting out its jitter: the newer ones wait after it
            timely.clear()
        elif fire_at >= now - GRACE:
            timely.append(slot)
        elif policy != "skip" and not (policy == "latest" and timely):
            missed.append(slot)
            if policy == "latest" or len(missed) >= trigger.catch_up_limit:
                break
    waited: list[float] = []
    if held_until is not None and last_slot is not None:
        wanted = int(not timely and not missed)  # skip, latest: the newest, if nothing else
        if policy == "all":
            wanted = trigger.catch_up_limit - len(missed)
        waited = _newest(trigger, last_slot, min(now, held_until), wanted)
    return sorted(timely + missed + waited)


def _newest(trigger: ScheduleTrigger, after: float, until: float, wanted: int) -> list[float]:
    """The newest ``wanted`` slots after ``after`` and at or before ``until``."""
    found: list[float] = []
    for slot in slots_before(trigger, until):
        if slot <= after or len(found) >= wanted:
            break
        found.append(slot)
    return found


def own_slot(trigger: object) -> float | None:
    """The slot a run's trigger document (``RunStarted.trigger``) says its schedule
    fired it for on its own; None for a run a person asked for (a backfill, a
    trigger-now: its document says so under ``ASKED``) or one no schedule started."""
    if not isinstance(trigger, dict) or trigger.get("kind") != "schedule" or ASKED in trigger:
        return None
    try:
        return slot_of_key(str(trigger["key"]))
    except (KeyError, ValueError):
        return None


def next_fire_at(trigger: ScheduleTrigger, now: float, name: str = "") -> float:
    """When the next slot not fired yet at ``now`` is fired (its time plus its jitter;
    a slot already passed may still be waiting out its jitter)."""
    jitter = trigger.jitter or 0.0
    best = float("inf")
    for count, slot in enumerate(slots_after(trigger, now - jitter)):
        if slot >= best or count > 10_000:
            break
        at = slot + jitter_of(name, trigger, slot)
        if at > now:
            best = min(best, at)
    return best


def zoned_time(trigger: ScheduleTrigger, slot: float) -> str:
    """A slot in the schedule's own zone, to the second (``2026-03-29 03:00:00 CEST``)."""
    return _zoned(trigger, slot).strftime("%Y-%m-%d %H:%M:%S %Z")


__all__ = ["ASKED", "GRACE", "due", "jitter_of", "next_fire_at", "own_slot", "schedule_names",
           "slot_key", "slot_of_key", "slots_after", "slots_before", "slots_between",
           "zoned_time"]  # fmt: skip
