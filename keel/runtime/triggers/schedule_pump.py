"""Firing the deployed schedules' slots, from every worker at once.

Each look reads the live schedules (deployed current versions) and their state (paused,
last slot), fires the slots ``schedules.due`` names, oldest first, and advances
``last_slot`` past each. Several workers firing the same slot start one run: the slot
is the firing's key, the key the run's id (``firing.fire``). A crash between the run and
the advance repeats the slot on the next look, which finds the run.

Overlap concerns the runs the schedule's own slots started, every one not ended yet
(the previous runs); runs a person asked for (a backfill, a trigger-now) are left alone.
With previous runs going, ``skip`` advances past a slot without firing it,
``cancel_previous`` cancels them and fires, ``queue`` leaves the slot (and the later
ones) until they ended: a slot that waits so is never missed, and once they ended
``catch_up`` picks which of the slots that waited fire (``due``'s ``held_until``);
``allow`` fires. A previous run of a slot after ``last_slot`` was fired by another
worker (or before a crash): the look advances past its slot first.

Which runs are the schedule's own is read from each one's first event (``first_event``),
once per run (what started a run never changes), and only when a slot has come.

Looks happen when the next slot is due (plus its jitter), at the latest ``every``
seconds apart (a deploy, a pause, an unpause are seen then); while a slot waits, every
``QUEUE_EVERY`` seconds. A look that fails, for whatever reason, is logged and tried
again after a backoff: the pump never ends the thread that runs it (a worker's loop,
``keel serve``'s schedule thread).
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keel.engine.state import RunStatus, is_finished
from keel.errors import InputError, KeelError, RunNotFoundError, StoreError
from keel.runtime.clock import Clock, Paced
from keel.runtime.operations.control import cancel_run
from keel.runtime.operations.deployed import run_id_for_key
from keel.runtime.runs import RunCache
from keel.runtime.triggers.firing import Armed, Firing, active, fire
from keel.runtime.triggers.schedules import (
    due,
    next_fire_at,
    own_slot,
    schedule_names,
    slot_key,
    slots_after,
    zoned_time,
)
from keel.spec.triggers import ScheduleTrigger
from keel.store.protocol import Store
from keel.store.records import RunRecord

if TYPE_CHECKING:  # prometheus_client is imported only by a process that counts
    from keel.runtime.metrics import Metrics

log = logging.getLogger("keel.schedules")

#: how often a slot queued behind a previous run looks whether that run ended
QUEUE_EVERY = 1.0
#: the longest pause before looking again after looks failed (doubling from 2 s)
MOST_BACKOFF = 60.0
#: the most runs of one schedule not ended yet that a look reads, per status
MOST_PREVIOUS = 100_000
#: the statuses of a run that has not ended
UNFINISHED = tuple(status.value for status in RunStatus if not is_finished(status))


@dataclass(frozen=True, slots=True)
class Previous:
    """A run of one of the schedule's own slots, not ended yet."""

    slot: float
    run_id: str


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
        #: looks that failed in a row (the backoff doubles with each)
        self._failures = 0
        #: by schedule, its runs not ended at the last look and their own slot (None: a
        #: person asked for the run), so each run's first event is read once
        self._slots: dict[str, dict[str, float | None]] = {}

    def run(self, now: float) -> int:
        """Fire the slots due at ``now``, when it is time to look; how many runs started.
        A look that fails is logged, and made again after a pause."""
        if not self.due(now):
            return 0
        try:
            started = self._look(now)
        except Exception as exc:  # the next look may succeed: never end the caller's loop
            self._failures += 1
            pause = min(MOST_BACKOFF, 2.0**self._failures)
            if isinstance(exc, StoreError):  # the database away: its own words say it
                log.warning("schedules: %s; looking again in %.0f s", exc, pause)
            else:
                log.exception("schedules: a look failed; looking again in %.0f s", pause)
            self._next = now + pause
            return 0
        self._failures = 0
        return started

    def _look(self, now: float) -> int:
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
        waits for the previous runs to end (``queue``)."""
        previous: list[Previous] = []
        held = None
        if trigger.overlap != "allow" and self._came(trigger, name, last, now):
            previous = self._previous(name)
            newest = max((run.slot for run in previous), default=None)
            if newest is not None and (last is None or newest > last):  # fired elsewhere
                self.store.advance_schedule(name, armed.spec.name, newest)
                last = newest
            if trigger.overlap == "queue":
                held = now if previous else self._ended_at(armed, name, last)
        started = 0
        for slot in due(trigger, last, now, name, held):
            firing = Firing("schedule", name, slot_key(slot))
            if previous and trigger.overlap == "queue":
                return started, True
            if previous and trigger.overlap == "skip":
                log.info("schedule %s: slot %s left out, run %s still going",
                         name, firing.key, previous[-1].run_id[:8])  # fmt: skip
            else:
                if previous and trigger.overlap == "cancel_previous":
                    self._cancel(previous, name, firing)
                    previous = []
                fired = self._fire(armed, trigger, firing, slot)
                started += fired is not None and fired[1]
                if fired is not None and trigger.overlap != "allow":  # the next slot's
                    previous = self._going(name, slot, *fired)
            self.store.advance_schedule(name, armed.spec.name, slot)
        return started, False

    def _going(self, name: str, slot: float, run: RunRecord, new: bool) -> list[Previous]:
        """The slot's run as the previous run of the next slot, if it goes on and is the
        schedule's own (one found, not started, may be a backfill's)."""
        if is_finished(run.status) or (not new and self._own_slot(name, run.id) is None):
            return []
        return [Previous(slot, run.id)]

    def _came(self, trigger: ScheduleTrigger, name: str, last: float | None, now: float) -> bool:
        """Whether a slot after ``last`` has come (one never fired: is due)."""
        if last is None:
            return bool(due(trigger, None, now, name))
        return next(iter(slots_after(trigger, last)), float("inf")) <= now

    def _previous(self, name: str) -> list[Previous]:
        """The runs of the schedule's own slots not ended yet, oldest slot first."""
        started_by = Firing("schedule", name, "").started_by
        going = [run.id for status in UNFINISHED
                 for run in self.store.list_runs(started_by=started_by, status=status,
                                                 limit=MOST_PREVIOUS)]  # fmt: skip
        known = self._slots.get(name, {})
        self._slots[name] = {run_id: known[run_id] for run_id in going if run_id in known}
        found = []
        for run_id in going:
            slot = self._own_slot(name, run_id)
            if slot is not None:
                found.append(Previous(slot, run_id))
        return sorted(found, key=lambda run: run.slot)

    def _own_slot(self, name: str, run_id: str) -> float | None:
        """The slot of schedule ``name`` that started the run (None: a person asked
        for it), from its first event, read once."""
        known = self._slots.setdefault(name, {})
        if run_id not in known:
            first = self.store.first_event(run_id)
            known[run_id] = own_slot(getattr(first.event, "trigger", None) if first else None)
        return known[run_id]

    def _ended_at(self, armed: Armed, name: str, last: float | None) -> float | None:
        """When the run of the slot ``last`` ended (None: there is none, or it goes on):
        the slots after ``last`` up to then waited for it."""
        if last is None:
            return None
        key = Firing("schedule", name, slot_key(last)).idempotency_key(armed.spec.name)
        try:
            run = self.store.get_run(run_id_for_key(key))
        except RunNotFoundError:
            return None
        return run.updated_at if is_finished(run.status) else None

    def _cancel(self, previous: list[Previous], name: str, firing: Firing) -> None:
        for run in previous:
            with suppress(KeelError):  # it ended meanwhile
                cancel_run(self.store, run.run_id, by=firing.started_by, clock=self.clock,
                           reason=f"schedule {name}: the slot {firing.key} came")  # fmt: skip

    def _fire(
        self, armed: Armed, trigger: ScheduleTrigger, firing: Firing, slot: float
    ) -> tuple[RunRecord, bool] | None:
        """Start the slot's run: the run and whether this started it (None: the
        workflow refused the input). The slot is the firing: a run of it started with
        another input (before a deploy changed it) is its run."""
        try:
            run, new = fire(self.store, armed.spec, dict(trigger.input), firing,
                            plans=self.plans, clock=self.clock, same_input=False)  # fmt: skip
        except InputError as exc:  # retrying cannot help: the slot is left out
            reason = " ".join(line.strip() for line in str(exc).splitlines())
            log.warning("schedule %s (workflow %s): the slot of %s (%s) started no run: %s",
                        firing.source, armed.spec.name, zoned_time(trigger, slot), firing.key,
                        reason)  # fmt: skip
            return None
        if new:
            log.info("schedule %s: started run %s for the slot %s", firing.source, run.id[:8],
                     firing.key)  # fmt: skip
            if self.metrics is not None:
                self.metrics.runs_started.labels(armed.spec.name).inc()
        return run, new
