"""A deterministic simulator for the pure engine: a 'worker' that runs scheduled work in
an order chosen by the test (or by hypothesis), with outcomes supplied by a function.

This is the deterministic-simulation harness STYLE.md asks for: no threads, no store.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keel.engine import (
    ErrorInfo,
    Event,
    NodeFailed,
    NodeScheduled,
    NodeSucceeded,
    Plan,
    RunStarted,
    RunState,
    apply,
    decide,
    is_finished,
)

Outcome = Callable[[str, dict[str, Any], int], Any]


class BoomError(Exception):
    """Raised by an outcome function to make an attempt fail."""


@dataclass
class Simulation:
    plan: Plan
    state: RunState
    history: list[Event] = field(default_factory=list)
    ready: list[NodeScheduled] = field(default_factory=list)

    @classmethod
    def start(cls, plan: Plan, run_input: Any) -> Simulation:
        sim = cls(plan, RunState.new(plan))
        sim.record([RunStarted(workflow=plan.spec.name, spec_version="v", input=run_input)])
        return sim

    def record(self, events: list[Event]) -> None:
        """Record events that came from outside (a worker's result), then decide."""
        for event in events:
            self.history.append(event)
            apply(self.state, event)
        follow = decide(self.state, now=0.0)
        self.history.extend(follow)
        self.ready.extend(e for e in follow if isinstance(e, NodeScheduled))

    def step(self, rng: random.Random, outcome: Outcome) -> None:
        work = self.ready.pop(rng.randrange(len(self.ready)))
        try:
            output = outcome(work.node, work.args, work.attempt)
        except BoomError as exc:
            error = ErrorInfo(type="Boom", message=str(exc))
            self.record(
                [NodeFailed(node=work.node, attempt=work.attempt, error=error, item=work.item)]
            )
            return
        self.record(
            [NodeSucceeded(node=work.node, attempt=work.attempt, output=output, item=work.item)]
        )

    def run(self, rng: random.Random, outcome: Outcome, limit: int = 100_000) -> RunState:
        for _ in range(limit):
            if is_finished(self.state.status) or not self.ready:
                break
            self.step(rng, outcome)
        return self.state
