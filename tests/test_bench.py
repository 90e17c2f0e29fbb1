"""The benchmark suite runs (quick mode, no targets) so it never rots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(360)  # the suite's own limit is 300 s, under pytest's 120 s default
def test_the_quick_benchmark_suite_runs_and_writes_its_results(tmp_path: Path) -> None:
    env = {**os.environ, "KEEL_BENCH_RESULTS": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = ("floor: SQLite commit, NORMAL", "W1 chain", "W2 fan-out", "W3", "W4", "W5",
            "W7 SQLite, 4 workers, nodes/s", "W7 PostgreSQL", "W7 PostgreSQL, 2 workers vs 1",
            "µs/node, PostgreSQL", "runs started by another process", "first run of a fresh",
            "defining a 50-step workflow", "W1 chain of 20 with metrics + tracing, CPU µs/node",
            "W3 30 runs with metrics + tracing, CPU µs/run")  # fmt: skip
    for row in rows:
        assert row in out.stdout
    assert "W8 API, 200 starts by 16 clients, SQLite" in out.stdout
    assert "W8 API, p99 of a start, PostgreSQL" in out.stdout
    (results,) = tmp_path.glob("bench-*-quick.json")
    data = json.loads(results.read_text())
    assert data["machine"]["sqlite"]
    names = [m["name"] for m in data["measures"]]
    assert any(name.startswith("W1 chain") for name in names)
    assert all(m["values"] for m in data["measures"])
    # observed for real: every attempt's span and the run's were recorded and exported
    (observed,) = data["raw"]["observed_w1_chain"]["observed"]
    assert observed["metrics"] is True
    assert observed["spans"] == 20 + 1
    (observed,) = data["raw"]["observed_w3_many_runs"]["observed"]
    assert observed["spans"] == 30 * (3 + 1)


def test_every_workload_is_described_in_its_help() -> None:
    from bench.workloads import ABOUT, WORKLOADS

    assert set(ABOUT) == set(WORKLOADS)
    assert all(len(f"  {name:<17}{what}") <= 80 for name, what in ABOUT.items())


@pytest.mark.slow
def test_the_api_workload_starts_runs_through_a_real_server() -> None:
    """A tiny W8: ``keel serve`` as a process, 16 clients, every start answered 201
    and recorded (the workload itself checks both)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.workloads", "api_starts", "32"], cwd=ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == "sqlite"
    assert result["clients"] == 16
    assert result["starts_per_second"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]


def test_the_layout_benchmark_runs_every_shape() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.layout", "200", "--reps", "1"], cwd=ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[2:]] == ["| chain", "| fan", "| random DAG"]
    assert "| 199 | 200 |" in rows[2], "a chain of 200 has 199 edges and 200 layers"


def test_the_dashboard_benchmarks_store_is_what_the_engine_would_have_made(
    tmp_path: Path,
) -> None:
    """``bench.run_store`` batches the engine's transitions: every run's chain is intact
    and its row is what its history says (as ``keel verify``), nothing stays leased, and
    the mix the runs list is measured on is there."""
    from bench.run_store import ERRORS, QUEUED, fill
    from keel.runtime.runs import RunCache
    from keel.runtime.views.activity import run_activity
    from keel.runtime.views.audit import verify_run
    from keel.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "keel.db")
    try:
        counts = fill(store, 600, waiting=3)
        assert sum(counts.values()) == 603
        assert {"succeeded", "failed", "cancelled", "paused", "running"} <= set(counts)
        runs = store.list_runs(limit=1_000)
        cache = RunCache(store)
        for run in runs:
            report, mismatches = verify_run(store, run, cache.state)
            assert report.intact, report.problems
            assert not mismatches, mismatches
            assert not store.leases(run.id)
        failed = [run for run in runs if run.status == "failed"]
        assert {run.error_type for run in failed} >= {"Rejected", ERRORS[0][0], ERRORS[1][0]}
        assert {run.failed_node for run in failed} >= {"fetch", "charge", "review", "publish"}
        assert 0 < store.count_runs(late=True).get("running", 0) < counts["running"]
        now = time.time()
        newest = [run_activity(store, run, now) for run in runs[: 3 + QUEUED]]
        assert [a.kind if a else None for a in newest] == ["waiting"] * 3 + ["queued"] * QUEUED
        assert {run.workflow for run in runs[:3]} == {"refunds"}
    finally:
        store.close()


@pytest.mark.slow
def test_the_dashboard_benchmark_measures_both_stores(tmp_path: Path) -> None:
    """Tiny sizes and no browser, so it cannot rot; no figure is judged."""
    from bench.dashboard import API, COUNTS, LIST

    env = {**os.environ, "KEEL_BENCH_RESULTS": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "bench.dashboard", "--runs", "200", "--reps", "2",
         "--no-browser"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = {line.split(" | ")[0][2:]: line for line in out.stdout.splitlines()
            if line.startswith("| ")}  # fmt: skip
    for name, _ in (*LIST, *COUNTS, *API):
        assert name in rows, name
    # the first and second pages are full in both stores; the counts count every run
    assert "| 50 / 50 |" in rows["all runs"]
    assert "| 50 / 50 |" in rows["second page"]
    assert "| 100 / 200 |" in rows["counts"]
    assert rows["all runs"].endswith("| ≤ 2x |  |")  # shown, judged at 100,000 runs only
    (results,) = tmp_path.glob("dashboard-*.json")
    data = json.loads(results.read_text())
    assert data["raw"]["store_200"]["runs"] == 200
    latencies = data["raw"]["runs_list"]["latency_ms"]
    assert set(latencies) == {name for name, _ in (*LIST, *COUNTS, *API)}
    assert all(len(by_store["100"]) == len(by_store["200"]) == 2 for by_store in latencies.values())
