"""A run of 10,000 nodes completes, in one process, on the embedded store."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.runtime import Worker, WorkerOptions, start_run
from keel.store.sqlite import SQLiteStore
from tests.integration.scale_flows import expected_last, layered_spec


@pytest.mark.slow
def test_a_run_of_ten_thousand_nodes_completes(tmp_path: Path) -> None:
    spec = layered_spec(10_000)
    store = SQLiteStore(tmp_path / "keel.db")
    try:
        record = start_run(store, spec, {})
        worker = Worker(store, WorkerOptions(concurrency=8))
        (done,) = worker.run_until_finished([record.id])
        worker.close()
        assert done.status == "succeeded", done.reason
        assert done.output == {"last": expected_last(spec)}
        # 1 start + 10,000 x (scheduled, started, succeeded) + 1 completion
        assert done.last_seq == 2 + 3 * 10_000
    finally:
        store.close()
