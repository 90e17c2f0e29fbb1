"""Runs that were late and one that was not, made with a fake clock and a real worker,
for the tests of what lists, ``keel show`` and the API say of them.

Each run of ``slow`` does a step, then waits for the signal ``go``; it is expected to
take 10 minutes (and stopped after an hour). From ``start``:

- ``on_time`` gets its signal after 1 minute and succeeds, never late;
- ``running`` is late after 10 minutes and still waits for its signal;
- ``finished`` is late after 10 minutes and succeeds after 14 (it finished late).
"""

from __future__ import annotations

from dataclasses import dataclass

from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.operations.interventions import send_signal
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store.protocol import Store
from tests.unit import runtime_tasks  # noqa: F401  (loaded, as a worker loads its code)

TASKS = "tests.unit.runtime_tasks"
#: seconds: the expected duration, and how long ``finished`` took
EXPECTED, TOOK = 600.0, 840.0


def slow_spec() -> WorkflowSpec:
    return parse_spec({
        "name": "slow",
        "nodes": [
            {"id": "a", "task": f"{TASKS}:echo", "args": {"value": 1}},
            {"id": "go", "kind": "signal", "signal": "go", "after": ["a"]},
        ],
        "expected_duration": "10m",
        "deadline": "1h",
    })  # fmt: skip


@dataclass(frozen=True)
class LateRuns:
    on_time: str
    running: str
    finished: str


def make_late_runs(store: Store, start: float = 1_700_000_000.0) -> LateRuns:
    clock = FakeClock(start)
    spec = slow_spec()
    worker = Worker(store, WorkerOptions(poll=0.01), clock=clock)
    try:
        on_time, running, finished = (start_run(store, spec, {}, clock=clock).id
                                      for _ in range(3))  # fmt: skip
        for run_id in (on_time, running, finished):
            while worker.step(wait=True, run_ids=[run_id]) or worker._running:
                pass
        clock.advance(60)
        send_signal(store, on_time, "go", by="tester", clock=clock)
        worker.run_until_finished([on_time])
        clock.advance(EXPECTED + 1 - 60)
        while worker.fire_timers():  # the late timers of running and finished
            pass
        clock.advance(TOOK - EXPECTED - 1)
        send_signal(store, finished, "go", by="tester", clock=clock)
        worker.run_until_finished([finished])
    finally:
        worker.close()
    return LateRuns(on_time, running, finished)
