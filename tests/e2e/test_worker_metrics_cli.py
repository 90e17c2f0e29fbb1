"""``keel worker --metrics-port`` in a real process over a SQLite file: after runs started
by ``keel run --detach`` are executed, its plain HTTP endpoint (on the loopback, no
token) counts them exactly; a port in use is one line and no worker. Waits poll with a
generous deadline; nothing asserts on durations."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from keel.store.sqlite import SQLiteStore
from tests.processes import free_port, keel_on, until

ROOT = Path(__file__).resolve().parents[2]
FLOWS = Path(__file__).resolve().with_name("workerflows.py")
DEADLINE = 60.0

pytestmark = pytest.mark.slow


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keel.db'}"


def start_worker(url: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": url}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "keel", "worker", str(FLOWS), *args], env=env,
            stdout=out, stderr=out, stdin=subprocess.DEVNULL,
        )  # fmt: skip


@pytest.fixture
def worker_log(tmp_path: Path) -> Path:
    return tmp_path / "worker.log"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The worker's metrics, or {} while it does not answer yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip


SUCCEEDED = ("keel_runs_finished_total", (("status", "succeeded"), ("workflow", "hello")))
FAILED = ("keel_runs_finished_total", (("status", "failed"), ("workflow", "refused")))


def ended(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    """The metrics once they count the three runs' ends (None before)."""
    found = scrape(port)
    return found if found.get(SUCCEEDED, 0) + found.get(FAILED, 0) == 3 else None


def test_a_worker_serves_its_counts_on_its_metrics_port(
    url: str, tmp_path: Path, worker_log: Path
) -> None:
    port = free_port()
    proc = start_worker(url, worker_log, "--metrics-port", str(port), "--concurrency", "3")
    try:
        until("the metrics answer", lambda: scrape(port))
        runs = []
        for workflow, name in (("hello", "ann"), ("hello", "bob"), ("refused", "cy")):
            done = keel_on(url, "run", f"{FLOWS}:{workflow}", "-i", f"name={name}", "--detach")
            assert done.returncode == 0, done.stderr
            runs.append(done.stdout.strip())

        found = until("the three runs' ends counted", lambda: ended(port))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=DEADLINE)

    log = worker_log.read_text()
    assert f"metrics: http://127.0.0.1:{port}/metrics (no token)" in log
    store = SQLiteStore(tmp_path / "keel.db")
    try:
        assert [store.get_run(run).status for run in runs] == ["succeeded"] * 2 + ["failed"]
    finally:
        store.close()
    assert (found[SUCCEEDED], found[FAILED]) == (2, 1)
    hello = (("node", "greet"), ("outcome", "succeeded"), ("workflow", "hello"))
    assert found[("keel_attempts_total", hello)] == 2
    failure = (("error_type", "ValueError"), ("node", "refuse"), ("workflow", "refused"))
    assert found[("keel_attempt_failures_total", failure)] == 1
    assert found[("keel_queue_lag_seconds_count", (("queue", "default"),))] == 3
    assert found[("keel_worker_slots", (("state", "free"),))] == 3
    # runs started by ``keel run --detach`` are counted by that process, not this one
    assert not any(name == "keel_runs_started_total" for name, _ in found)
    # no ``_created`` series: one a counter or histogram would double the series
    assert not [name for name, _ in found if name.endswith("_created")]


def test_a_metrics_port_in_use_is_one_line_and_no_worker(url: str, worker_log: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start_worker(url, worker_log, "--metrics-port", str(port))
        code = proc.wait(timeout=DEADLINE)

    output = worker_log.read_text()
    assert code != 0
    assert f"keel worker: cannot serve metrics on 127.0.0.1:{port}:" in output
    assert "Traceback" not in output
