"""The run page's timeline: one bar per attempt on a shared time axis, split into the
time it waited on the queue (queued, or its retry's backoff, to started) and the time
it ran (started to ended, or to now). Retries are bars of their own; a wait (an
approval, a child run...) is one bar from when it opened; a child run is a link under
its bar. Positions are percentages of the run's span, so the page draws the bars with
plain absolutely positioned boxes and no script.
"""

from __future__ import annotations

from dataclasses import dataclass

from keel.runtime.views.attempts import Attempt

#: bars drawn at most (a run with more attempts says how many are not drawn)
MOST_BARS = 400

_STATE = {"succeeded": "succeeded", "failed": "failed", "running": "running",
          "queued": "queued", "waiting": "waiting", "reclaimed": "retrying",
          "withdrawn": "cancelled", "cancelled": "cancelled"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Bar:
    attempt: Attempt
    #: the attempt's state class (``.state.X``)
    state: str
    #: where its queued part starts and how wide it is, in % of the axis
    queued_left: float
    queued_width: float
    run_left: float
    run_width: float

    @property
    def label(self) -> str:
        item = "" if self.attempt.item is None else f"[{self.attempt.item}]"
        return f"{self.attempt.node}{item} #{self.attempt.attempt}"


@dataclass(frozen=True, slots=True)
class Timeline:
    bars: list[Bar]
    start: float
    end: float
    #: attempts not drawn (beyond ``MOST_BARS``)
    hidden: int

    @property
    def span(self) -> float:
        return self.end - self.start

    def ticks(self, count: int = 4) -> list[tuple[float, float]]:
        """(% of the axis, seconds since the start) for the axis labels."""
        return [(100.0 * k / count, self.span * k / count) for k in range(count + 1)]


def timeline(attempts: list[Attempt], start: float | None, now: float) -> Timeline:
    """The bars of ``attempts`` between the run's ``start`` and its last moment (``now``
    while an attempt is open)."""
    drawn = attempts[:MOST_BARS]
    times = [t for a in drawn for t in (a.queued_at, a.started_at, a.ended_at) if t is not None]
    first = min([*times, *([] if start is None else [start])], default=now)
    open_now = any(a.ended_at is None for a in drawn)
    last = max([*times, *([now] if open_now else [])], default=first)
    span = max(last - first, 1e-6)

    def pos(at: float) -> float:
        return round(100.0 * (at - first) / span, 3)

    def width(start: float, end: float) -> float:
        return round(max(0.0, 100.0 * (end - start) / span), 3)

    bars = []
    for a in drawn:
        ended = a.ended_at if a.ended_at is not None else last
        began = a.started_at
        queued_from = a.queued_at if a.not_before is None else max(a.queued_at or 0, a.not_before)
        q_left = q_width = r_left = r_width = 0.0
        if queued_from is not None:
            q_end = began if began is not None else ended
            q_left, q_width = pos(queued_from), width(queued_from, q_end)
        if began is not None:
            r_left, r_width = pos(began), width(began, ended)
        bars.append(Bar(a, _STATE.get(a.outcome, "pending"), q_left, q_width, r_left, r_width))
    return Timeline(bars, first, last, len(attempts) - len(drawn))
