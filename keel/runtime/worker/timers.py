"""What a due timer means for its run: the events a worker records when it fires.

Timers are how a run is woken without anything waiting in memory: a deadline, an
expected duration (the run is late), a waiting node's time, a child run's end told to
its parent, a parent's end cancelling a child. A timer that no longer applies (its run
ended, its node stopped waiting) fires into nothing and is cleared.
"""

from __future__ import annotations

from keel.engine.events import (
    ChildRunEnded,
    Event,
    RunCancelled,
    RunDeadlineExceeded,
    RunLate,
    TimerFired,
)
from keel.engine.state import RunState, RunStatus, is_finished
from keel.runtime.runs import DEADLINE, LATE
from keel.runtime.waiting import CANCEL
from keel.store.records import Timer


def timer_causes(state: RunState, timer: Timer) -> list[Event]:
    if is_finished(state.status):
        return []
    data = timer.data if isinstance(timer.data, dict) else {}
    key = timer.key
    if key == DEADLINE:
        if state.status in (RunStatus.RUNNING, RunStatus.PAUSED):
            return [RunDeadlineExceeded(deadline=state.plan.deadline or 0.0)]
        return []
    if key == LATE:  # a run late already (its timer fired twice) is not told again
        if state.late or state.plan.expected_duration is None:
            return []
        return [RunLate(expected=state.plan.expected_duration)]
    if key == CANCEL:
        reason = str(data.get("reason", "the parent run ended"))
        return [RunCancelled(reason=reason, by=str(data.get("by", "keel")))]
    kind, _, node = key.partition(":")
    if node not in state.plan.nodes:
        return []
    if kind == "wait":
        return [TimerFired(node=node, attempt=int(data.get("attempt", 0)))]
    if kind == "child":
        return [
            ChildRunEnded(node=node, run_id=str(data.get("run_id")), status=str(data.get("status")),
                          output=data.get("output"), reason=data.get("reason"))
        ]  # fmt: skip
    return []
