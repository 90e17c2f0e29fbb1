"""Wake-ups survive the trip through a NOTIFY payload, and a transition says exactly what
it left for other processes."""

from __future__ import annotations

import pytest

from keel.store.records import Notification, Ready, Timer
from keel.store.wakeups import (
    MaybeMissed,
    OutboxFilled,
    TimerSet,
    Wakeup,
    WorkQueued,
    decode,
    encode,
    wakeups_of,
)
from keel.store.writes import Enqueue, Hold, Notify, SetTimer, Transition


@pytest.mark.parametrize(
    "wakeup",
    [
        WorkQueued("default", 1_700_000_000.123456),
        WorkQueued(None),
        WorkQueued("a queue with spaces", 0.0),
        TimerSet(1_700_000_000.5),
        OutboxFilled(),
        MaybeMissed(),
    ],
)
def test_a_wake_up_reads_back_as_itself(wakeup: Wakeup) -> None:
    assert decode(encode(wakeup)) == wakeup


@pytest.mark.parametrize("payload", ["", "timer soon", "ready q later", "reboot"])
def test_a_payload_not_understood_makes_the_worker_look_everywhere(payload: str) -> None:
    assert decode(payload) == MaybeMissed()


def test_a_transition_wakes_for_what_it_left_unleased_its_timers_outbox_and_release() -> None:
    kept = Ready("a", 1, queue="mine", available_at=5.0)
    leased = Ready("b", 1, queue="theirs")
    t = Transition(
        "r", 3, 1.0, [],
        [Enqueue(kept), Enqueue(leased), SetTimer(Timer("r", "deadline", 9.0)),
         Notify(Notification({}, {})), Hold(False)],
    )  # fmt: skip
    assert wakeups_of(t, [kept]) == {
        WorkQueued("mine", 5.0),
        TimerSet(9.0),
        OutboxFilled(),
        WorkQueued(None),
    }
    assert wakeups_of(Transition("r", 3, 1.0, [], [Hold(True)]), []) == set()
