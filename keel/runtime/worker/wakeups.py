"""What a wake-up from the store means for the worker: which look to bring forward.

With a store that notifies (``Store.listen``), the worker sleeps until another process
says it left work: attempts queued on a queue (available from a time), a timer set, a
notification put in the outbox, or ``*`` (notifications may have been lost: look at
everything). Each wake-up only moves a pump's next look earlier; the look itself finds
out what there is, so a wake-up for work someone else took costs one look.
"""

from __future__ import annotations

from typing import assert_never

from keel.runtime.clock import Clock
from keel.runtime.worker.claiming import Claiming
from keel.runtime.worker.outbox_pump import OutboxPump
from keel.runtime.worker.timer_pump import TimerPump
from keel.store.wakeups import MaybeMissed, OutboxFilled, TimerSet, Wakeup, WorkQueued


class Wakeups:
    def __init__(
        self,
        clock: Clock,
        queues: tuple[str, ...] | None,
        claims: Claiming,
        timers: TimerPump,
        outbox: OutboxPump,
    ) -> None:
        self.clock = clock
        self.queues = queues
        self.claims = claims
        self.timers = timers
        self.outbox = outbox

    def handle(self, wakeup: Wakeup) -> None:
        """Apply one wake-up (see ``keel.store.wakeups``)."""
        match wakeup:
            case WorkQueued(queue=queue, at=at):
                if queue is None or self.queues is None or queue in self.queues:
                    delay = at - self.clock.now()  # run clock, to pacing time
                    self.claims.look_by(self.clock.monotonic() + max(0.0, delay))
            case TimerSet(due=due):
                self.timers.wake_at(due)
            case OutboxFilled():
                self.outbox.look_now()
            case MaybeMissed():
                self.look_everywhere()
            case _:
                assert_never(wakeup)

    def look_everywhere(self) -> None:
        """Look at the queue, the timers and the outbox on the next turn."""
        self.claims.look_now()
        self.timers.look_now()
        self.outbox.look_now()
