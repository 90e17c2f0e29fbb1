"""The benchmark suite runs (quick mode, no targets) so it never rots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
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
