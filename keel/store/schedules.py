"""The state of each schedule a store keeps: whether someone paused it, and the newest
slot fired (or deliberately left out) for it.

``last_slot`` only bounds catching up after a pause or an outage: it is never what
makes a slot fire once (the run id derived from the slot does that), so it may lag
behind the runs (a crash between a run and its advance repeats the advance, which finds
the run). It only moves forward, whoever writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ScheduleState:
    name: str
    workflow: str
    paused: bool
    paused_by: str | None
    paused_at: float | None
    #: the newest slot fired or left out (a UTC timestamp); None: none yet
    last_slot: float | None


def schedule_of(row: Sequence[Any]) -> ScheduleState:
    """A schedule's state as both backends select it (``select_schedules``' columns)."""
    name, workflow, paused, paused_by, paused_at, last_slot = row
    return ScheduleState(name, workflow, bool(paused), paused_by, paused_at, last_slot)
