"""Replaying a run's stored history through ``apply`` rebuilds exactly the state the
worker reached, for random DAGs run by the real worker on the real store (random
completion orders come from the thread pool's scheduling and random task delays)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from keel.engine import RunState, apply
from keel.runtime import Worker, WorkerOptions, start_run
from keel.spec import parse_spec
from keel.store.sqlite import SQLiteStore
from tests.integration import scale_flows  # noqa: F401  (loaded, as a worker loads its code: see task_access)
from tests.unit.test_engine import snapshot

TASK = "tests.integration.scale_flows:weigh"


@st.composite
def random_specs(draw: st.DrawFn) -> Any:
    size = draw(st.integers(min_value=1, max_value=15))
    nodes: list[dict[str, Any]] = []
    maps: set[int] = set()
    for index in range(size):
        parents = sorted(draw(st.sets(st.integers(0, index - 1), max_size=3))) if index else []
        reads = ", ".join(f"nodes.n{p}.output" for p in parents)
        node: dict[str, Any] = {"id": f"n{index}", "task": TASK,
                                "args": {"values": "${{ [" + reads + "] }}"}}  # fmt: skip
        if parents and draw(st.booleans()):
            ref = f"nodes.n{parents[0]}.output"
            number = f"size({ref})" if parents[0] in maps else ref
            node["when"] = f"{ref} != null && {number} % 2 == 0"
            node["join"] = "all_done"
        if draw(st.integers(0, 4)) == 0:
            join = node.get("join", "none_failed")
            node = {"id": node["id"], "kind": "map", "task": TASK, "item_arg": "values",
                    "items": "[[1], [2, 3], []]", "join": join}  # fmt: skip
            maps.add(index)
        nodes.append(node)
    max_parallel = draw(st.sampled_from([None, 1, 2]))
    spec: dict[str, Any] = {"name": "random", "nodes": nodes,
                            "outputs": {"last": f"nodes.n{size - 1}.output"}}  # fmt: skip
    if max_parallel:
        spec["max_parallel"] = max_parallel
    return parse_spec(spec)


@settings(max_examples=25, deadline=None)
@given(random_specs(), st.integers(1, 4))
def test_replaying_the_stored_history_rebuilds_the_workers_state(spec: Any, threads: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "keel.db")
        try:
            record = start_run(store, spec, {})
            worker = Worker(store, WorkerOptions(concurrency=threads))
            (done,) = worker.run_until_finished([record.id])
            live = worker.cache.state(record.id)
            worker.close()
            history = store.history(record.id)
            replayed = RunState.new(live.plan)
            for stored in history:
                apply(replayed, stored.event, stored.seq)
        finally:
            store.close()
    assert done.status == "succeeded", done.reason
    assert snapshot(replayed) == snapshot(live)
    assert replayed.last_seq == done.last_seq == len(history)
    assert (replayed.status.value, replayed.output) == (done.status, done.output)
