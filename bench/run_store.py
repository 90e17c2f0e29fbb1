"""A SQLite store holding N runs of ``bench/dash_flows.yaml``, as a dashboard would find
it after a month of work, made in minutes (two to six for 100,000 runs here).

Each run gets a story, drawn from a seeded random generator, so the same N gives the
same mix: which workflow, who started it, when (spread evenly over the last ``SPAN``
seconds, the newest a few seconds ago) and how it went: succeeded (seven in ten),
failed at one of its tasks with one of several error types (a rare one among them),
its approval rejected, cancelled or paused while it waited, still waiting at its
approval, or queued (the ten newest: not yet picked up). An ``orders`` run still going
four hours after it began (its ``expected_duration``) is marked late when that timer
fires, as a worker would (``keel.runtime.worker.transitions.timer_fired``).

How, and why it is faithful: the engine decides every step exactly as the runtime
does (``advance``, ``recorded``, ``timer_fired``, the same events and writes, hash
chain and leases), and the store's own writer applies them. Only the batching is the
bench's: runs are started ``BATCH`` at a time in one write (what
``SQLStore.create_run`` does for one run, repeated inside one transaction), and
their next steps go through ``Store.commit`` as groups (one write a group, a savepoint
a run). Each task attempt is leased by the transition before it (lease-on-commit, as a
worker continuing a run does), so ``NodeStarted`` and the leases are the store's own.
One run at a time through the engine (``start_run``: 1.7 ms a run here; a worker's W3:
about 200 runs/s) 100,000 runs would take ten minutes or more. ``keel verify --all``
finds every run's chain intact and its row as its history says.
"""

from __future__ import annotations

import json
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.authoring.yaml_source import load_yaml_text
from keel.engine.events import ApprovalDecided, ErrorInfo, RunCancelled, RunPaused, RunStarted
from keel.engine.state import RunState
from keel.runtime.execution.invoke import Outcome
from keel.runtime.runs import LATE, RunCache, advance
from keel.runtime.tracing.context import started_trace
from keel.runtime.worker.transitions import recorded, timer_fired
from keel.spec.model import WorkflowSpec
from keel.store.records import Lease, Timer
from keel.store.sqlite import SQLiteStore
from keel.store.wakeups import Wakeup
from keel.store.writes import Committed, LeaseRequest, Transition

FLOWS = Path(__file__).resolve().parent / "dash_flows.yaml"
#: the runs' start times are spread over this many seconds before now (30 days)
SPAN = 30 * 86_400.0
#: runs started (and advanced) together, a write for each step of theirs
BATCH = 2_000
OWNER = "bench-seeder"
#: error types of failed tasks, most common first; the last is rare on purpose
ERRORS = (("TimeoutError", 40), ("ConnectionError", 25), ("ValueError", 15),
          ("KeyError", 10), ("PaymentDeclined", 9), ("PermissionError", 1))  # fmt: skip
STARTERS = (None, "alice", "bob", "ci-deploy", "schedule:nightly")
#: the newest runs are queued: no worker has taken them yet (as many in a store of
#: any size, so the first page of the list has the same mix in a small one and a big one)
QUEUED = 10
#: an ``orders`` run's expected duration (``dash_flows.yaml``): still going then, late
LATE_AFTER = 4 * 3_600.0


@dataclass
class Story:
    """One run to make: its workflow and start, then each step at its time."""

    spec: WorkflowSpec
    started_by: str | None
    at: float
    #: (time, action, argument): ok / fail (error type) / approve / reject (node) /
    #: cancel / pause / late
    steps: list[tuple[float, str, str]] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: attempts leased to the seeder (a task step completes or fails the one it holds)
    held: list[Lease] = field(default_factory=list)


def workflows() -> dict[str, WorkflowSpec]:
    return {spec.name: spec for spec in load_yaml_text(FLOWS.read_text(), str(FLOWS))}


def stories(n: int, now: float, *, waiting: int = 0, seed: int = 21) -> list[Story]:
    """The ``n`` runs' stories, oldest first; then ``waiting`` more, the newest, each a
    ``refunds`` run waiting at its approval (to be changed while a page watches)."""
    rng = random.Random(seed)
    specs = workflows()
    made = []
    for index in range(n):
        at = now - SPAN * (n - index) / n - waiting
        name = rng.choices(("orders", "refunds", "reports"), (5, 3, 2))[0]
        story = Story(specs[name], rng.choice(STARTERS), at)
        if index < n - QUEUED:
            _plot(story, rng, now)
        made.append(story)
    for index in range(waiting):
        at = now - waiting + index
        made.append(Story(specs["refunds"], "alice", at, [(at + 0.5, "ok", "")]))
    return made


def _error(rng: random.Random) -> str:
    return rng.choices([name for name, _ in ERRORS], [weight for _, weight in ERRORS])[0]


def _plot(story: Story, rng: random.Random, now: float) -> None:
    """Fill in the story's steps (times after its start, before ``now``)."""
    t = story.at
    steps = story.steps

    def task(action: str = "ok", error: str = "") -> None:
        nonlocal t
        t += rng.uniform(0.05, 5.0)
        steps.append((t, action, error))

    def decide(action: str, node: str) -> None:
        nonlocal t
        # people answer in minutes to days; never later than now
        t = min(t + rng.lognormvariate(7.0, 1.5), t + (now - t) * 0.9)
        steps.append((t, action, node))

    name = story.spec.name
    fate = rng.random()
    approval = "review" if name == "orders" else "approve"
    if name == "reports":
        task()
        task(*(("fail", _error(rng)) if fate < 0.15 else ("ok", "")))
    elif fate < 0.06:  # fails at its first task
        task("fail", _error(rng))
    elif name == "orders" and fate < 0.12:  # at its second
        task()
        task("fail", _error(rng))
    else:
        task()
        if name == "orders":
            task()
        if fate < 0.18:
            decide("reject", approval)
        elif fate < 0.22:
            decide("cancel", "")
        elif fate < 0.24:
            decide("pause", "")
        elif fate >= 0.32:  # below: still waiting at its approval
            decide("approve", approval)
            if name == "orders":
                task(*(("fail", _error(rng)) if fate > 0.97 else ("ok", "")))
    going = name != "reports" and 0.22 <= fate < 0.32  # paused, or waiting
    if name == "orders" and (now if going else steps[-1][0]) > story.at + LATE_AFTER:
        steps.append((story.at + LATE_AFTER, "late", ""))  # its expected-duration timer fired
        steps.sort(key=lambda step: step[0])


def _first(story: Story, cache: RunCache, lease: bool) -> Transition:
    """The run's start, as ``record_run`` decides it (leasing its first task)."""
    spec, run_id = story.spec, story.run_id
    state = RunState.new(cache.plan_of(spec), run_id)
    started = RunStarted(workflow=spec.name, spec_version=spec.version,
                         input={"n": 1}, by=story.started_by,
                         trace=started_trace(run_id, spec.name).to_data())  # fmt: skip
    first = advance(run_id, state, [started], story.at, cache=cache)
    state.started_at = first.at
    cache.put(run_id, state)
    return _leasing(first) if lease else first


def _leasing(transition: Transition) -> Transition:
    """The transition leasing the attempts it queues to the seeder, as a worker that
    continues the run does (``keel.runtime.worker.transitions.leasing``)."""
    ready = len(transition.enqueued)
    return transition.leasing(LeaseRequest(OWNER, ready, 86_400.0)) if ready else transition


def _create(store: SQLiteStore, made: list[tuple[Story, Transition]]) -> list[Committed]:
    """``SQLStore.create_run`` for many runs in one write (its spec saved before)."""
    notes: set[Wakeup] = set()
    committed = []
    with store.dialect.write() as cur:
        for story, first in made:
            store._insert_run(cur, story.spec, {"n": 1}, first, None,
                              started_by=story.started_by)  # fmt: skip
            committed.append(store._apply(cur, first, notes))
        store.dialect.notify(cur, notes)
    return committed


def _step(story: Story, cache: RunCache, at: float, action: str, argument: str) -> Transition:
    """The transition of one step, as the worker or the operation would decide it."""
    state = cache.state(story.run_id)
    if action in ("ok", "fail"):
        lease = story.held.pop(0)
        outcome = (Outcome(output=2) if action == "ok" else
                   Outcome(error=ErrorInfo(argument, f"{argument} in {lease.node}",
                                           retryable=False)))  # fmt: skip
        return _leasing(recorded(state, lease, outcome, at, cache))
    if action == "late":
        return timer_fired(state, Timer(story.run_id, LATE, at), at, cache)
    causes: list[Any]
    if action in ("approve", "reject"):
        causes = [ApprovalDecided(node=argument, approved=action == "approve", by="carol")]
    elif action == "cancel":
        causes = [RunCancelled(reason="not needed any more", by="carol")]
    else:
        causes = [RunPaused(by="carol", reason="waiting for the supplier")]
    return _leasing(advance(story.run_id, state, causes, at, cache=cache))


def _settle(story: Story, committed: Committed, cache: RunCache) -> None:
    if committed.error is not None:
        raise SystemExit(f"run {story.run_id}: {committed.error}")
    cache.settle(committed)
    for claimed in committed.claimed:
        cache.observe(claimed.started)
        story.held.append(claimed.lease)


def fill(
    store: SQLiteStore, n: int, now: float | None = None, *, waiting: int = 0
) -> dict[str, int]:
    """Deploy the workflows and make ``n`` runs (and ``waiting``: see ``stories``); the
    runs by status."""
    now = time.time() if now is None else now
    specs = workflows()
    store.deploy([(spec, str(FLOWS)) for spec in specs.values()], now - SPAN - 60, by="bench")
    for spec in specs.values():
        store.save_spec(spec, now - SPAN - 60)
    every = stories(n, now, waiting=waiting)
    for start in range(0, len(every), BATCH):
        batch = every[start : start + BATCH]
        cache = RunCache(store, capacity=2 * BATCH)
        made = [(story, _first(story, cache, bool(story.steps))) for story in batch]
        for (story, _), committed in zip(made, _create(store, made), strict=True):
            _settle(story, committed, cache)
        for index in range(max((len(story.steps) for story in batch), default=0)):
            going = [story for story in batch if index < len(story.steps)]
            transitions = [_step(story, cache, *story.steps[index]) for story in going]
            for story, committed in zip(going, store.commit(transitions), strict=True):
                _settle(story, committed, cache)
    leftover = [lease for story in every for lease in story.held]
    if leftover:
        raise SystemExit(f"{len(leftover)} attempts left leased, e.g. {leftover[0]}")
    return store.count_runs()


def main() -> None:
    """``python -m bench.run_store N PATH [WAITING]``: make a store (the benchmark's
    stores are made so, in a process of their own); prints one JSON object."""
    size, path = int(sys.argv[1]), Path(sys.argv[2])
    waiting = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    store = SQLiteStore(path)
    began = time.perf_counter()
    counts = fill(store, size, waiting=waiting)
    store.close()
    print(json.dumps({"runs": size + waiting, "seconds": time.perf_counter() - began,
                      "by_status": counts}))  # fmt: skip


if __name__ == "__main__":
    main()
