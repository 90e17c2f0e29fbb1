"""Firing the deployed schedules' slots, from every worker at once.

Each look reads the live schedules (deployed current versions) and their state (paused,
last slot), fires the slots ``schedules.due`` names, oldest first, and advances
``last_slot`` past each. Several workers firing the same slot start one run: the slot
is the firing's key, the key the run's id (``firing.fire``). A crash between the run and
the advance repeats the slot on the next look, which finds the run.

Overlap (the schedule's previous run, the newest started by ``schedule:NAME``, has not
ended): ``skip`` advances without firing, ``cancel_previous`` cancels it and fires,
``queue`` leaves the slot (and the later ones) until it ends, ``allow`` fires. A previous
run that is this slot's own or a newer slot's means another worker got there first: the
slot is advanced past, nothing more.

Looks happen when the next slot is due (plus its jitter), at the latest ``every``
seconds apart (a deploy, a pause, an unpause are seen then).
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import TYPE_CHECKING, Literal

from keel.engine.state import is_finished
from keel.errors import InputError, KeelError
from keel.runtime.clock import Clock, Paced
from keel.runtime.operations.control import cancel_run
from keel.runtime.operations.deployed import run_id_for_key
from keel.runtime.runs import RunCache
from keel.runtime.triggers.firing import Armed, Firing, active, fire
from keel.runtime.triggers.schedules import (
    due,
    next_fire_at,
    schedule_names,
    slot_key,
    slot_of_key,
)
from keel.spec.triggers import ScheduleTrigger
from keel.store.protocol import Store
from keel.store.records import RunRecord

if TYPE_CHECKING:  # prometheus_client is imported only by a process that counts
    from keel.runtime.metrics import Metrics

log = logging.getLogger("keel.schedules")

#: how often a slot queued behind a previous run looks whether that run ended
QUEUE_EVERY = 1.0

Decision = Literal["fire", "leave", "wait"]


def first_slot_of(store: Store, run: RunRecord) -> float | None:
    """The slot a schedule's run was started for (None: started by hand, trigger-now)."""
    events = store.history(run.id)[:1]
    trigger = getattr(events[0].event, "trigger", None) if events else None
    if not isinstance(trigger, dict) or trigger.get("kind") != "schedule":
        return None
    try:
        return slot_of_key(trigger["key"])
    except (KeyError, ValueError):
        return None


class SchedulePump(Paced):
    def __init__(
        self,
        store: Store,
        plans: RunCache,
        *,
        clock: Clock | None = None,
        every: float = 10.0,
        metrics: Metrics | None = None,
    ) -> None:
        """``metrics``: where to count the runs it starts (None: not counted)."""
        self.store = store
        self.plans = plans
        self.clock = clock
        self.every = every
        self.metrics = metrics
        self._next = float("-inf")

    def run(self, now: float) -> int:
        """Fire the slots due at ``now``, when it is time to look; how many runs started."""
        if not self.due(now):
            return 0
        started = 0
        wake = now + self.every
        states = {state.name: state for state in self.store.schedules()}
        for armed in active(self.store, self.plans, "schedule"):
            trigger = armed.trigger
            assert isinstance(trigger, ScheduleTrigger)
            name = schedule_names(armed.spec)[armed.index]
            state = states.get(name)
            if state is not None and state.paused:
                continue
            last = None if state is None else state.last_slot
            count, waiting = self._fire_due(armed, trigger, name, last, now)
            started += count
            wake = min(wake, now + QUEUE_EVERY if waiting else next_fire_at(trigger, now, name))
        self._next = wake
        return started

    def _fire_due(
        self, armed: Armed, trigger: ScheduleTrigger, name: str, last: float | None, now: float
    ) -> tuple[int, bool]:
        """Fire one schedule's due slots: how many runs started, and whether a slot
        waits for the previous run to end (``queue``)."""
        started = 0
        for slot in due(trigger, last, now, name):
            firing = Firing("schedule", name, slot_key(slot))
            decision = self._overlap(armed, trigger, name, firing, slot)
            if decision == "wait":
                return started, True
            if decision == "fire":
                started += self._fire(armed, trigger, firing)
            self.store.advance_schedule(name, armed.spec.name, slot)
        return started, False

    def _fire(self, armed: Armed, trigger: ScheduleTrigger, firing: Firing) -> int:
        try:
            _, new = fire(self.store, armed.spec, dict(trigger.input), firing,
                          plans=self.plans, clock=self.clock)  # fmt: skip
        except InputError as exc:  # retrying cannot help: the slot is left out
            log.warning("schedule %s: slot %s started no run: %s", firing.source, firing.key, exc)
            return 0
        if new:
            log.info("schedule %s: started the run of slot %s", firing.source, firing.key)
            if self.metrics is not None:
                self.metrics.runs_started.labels(armed.spec.name).inc()
        return int(new)

    def _overlap(
        self, armed: Armed, trigger: ScheduleTrigger, name: str, firing: Firing, slot: float
    ) -> Decision:
        if trigger.overlap == "allow":
            return "fire"
        previous = self.store.list_runs(started_by=firing.started_by, limit=1)
        if not previous or is_finished(previous[0].status):
            return "fire"
        run = previous[0]
        if run.id == run_id_for_key(firing.idempotency_key(armed.spec.name)):
            return "leave"  # this slot's own run: fired already
        earlier = first_slot_of(self.store, run)
        if earlier is not None and earlier > slot:
            return "leave"  # a newer slot fired already: this look is behind
        if trigger.overlap == "skip":
            log.info("schedule %s: slot %s left out, run %s still going",
                     name, firing.key, run.id[:8])  # fmt: skip
            return "leave"
        if trigger.overlap == "queue":
            return "wait"
        with suppress(KeelError):  # it ended meanwhile
            cancel_run(self.store, run.id, by=firing.started_by, clock=self.clock,
                       reason=f"schedule {name}: the slot {firing.key} came")  # fmt: skip
        return "fire"
