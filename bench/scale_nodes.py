"""Per-node cost of one run as the graph grows (issue 3's flatness check).

    python -m bench.scale_nodes [SIZES...]

Each size runs in a fresh process on a fresh SQLite file (WAL, synchronous=NORMAL), one
worker with 8 threads; reports microseconds per node for the run itself (start_run to
completion) and, separately, for building, validating and compiling the spec.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (100, 1_000, 10_000, 100_000)


def one(n: int) -> dict[str, float]:
    from keel.engine.plan import compile_plan
    from keel.runtime import RunCache, Worker, WorkerOptions, start_run
    from keel.store.sqlite import SQLiteStore
    from tests.integration.scale_flows import layered_spec

    began = time.perf_counter()
    spec = layered_spec(n)
    compile_plan(spec)
    built = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "keel.db")
        began = time.perf_counter()
        cache = RunCache(store)
        record = start_run(store, spec, {}, cache=cache)
        worker = Worker(store, WorkerOptions(concurrency=8), cache=cache)
        (done,) = worker.run_until_finished([record.id])
        ran = time.perf_counter() - began
        worker.close()
        store.close()
    assert done.status == "succeeded", done.reason
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"nodes": n, "run_us_per_node": ran / n * 1e6, "spec_us_per_node": built / n * 1e6,
            "peak_rss_mb": peak_mb}  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(json.dumps(one(int(sys.argv[2]))))
        return
    sizes = [int(arg) for arg in sys.argv[1:]] or list(SIZES)
    print("| nodes | run µs/node | spec build+validate+compile µs/node | peak RSS MB |")
    print("|---|---|---|---|")
    for n in sizes:
        out = subprocess.run(
            [sys.executable, "-m", "bench.scale_nodes", "--one", str(n)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        row = json.loads(out.stdout.splitlines()[-1])
        print(
            f"| {n:,} | {row['run_us_per_node']:.0f} | {row['spec_us_per_node']:.0f} "
            f"| {row['peak_rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
