"""A history the real worker recorded replays clean against its own definition: for
random DAGs (maps, conditions, join rules, ``max_parallel``) run by the worker's thread
pool in whatever order it finishes them, ``keel.engine.replay`` finds every decision
the engine recorded, made again in order; splitting the history by the kind of each
event finds the same decisions as splitting it with the definition."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from keel.engine import compile_plan
from keel.engine.replay import compare, recorded_steps, replay, steps_by_kind
from keel.runtime import Worker, WorkerOptions, start_run
from keel.store.sqlite import SQLiteStore
from tests.integration import scale_flows  # noqa: F401  (loaded, as a worker loads its code)
from tests.integration.test_replay_store import random_specs


@settings(max_examples=12, deadline=None)
@given(random_specs(), st.integers(1, 4))
def test_a_recorded_history_replays_clean_against_its_definition(spec: Any, threads: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "keel.db")
        try:
            record = start_run(store, spec, {})
            worker = Worker(store, WorkerOptions(concurrency=threads))
            (done,) = worker.run_until_finished([record.id])
            worker.close()
            history = store.history(record.id)
        finally:
            store.close()
    assert done.status == "succeeded", done.reason
    result = replay(history, spec, run_id=record.id)
    assert result.ok, result.divergence and result.divergence.summary()
    assert result.state.output == done.output
    plan = compile_plan(spec)
    steps, _ = recorded_steps(plan, record.id, history)
    by_kind = steps_by_kind(history)
    decided = [made.seq for step in steps for made in step.decisions]
    assert [made.seq for step in by_kind for made in step.decisions] == decided
    assert result.decisions == len(decided)
    blind = compare(by_kind, plan, record.id)
    assert blind.ok, blind.divergence and blind.divergence.summary()
