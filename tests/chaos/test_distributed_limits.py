"""Limits and leases across real worker processes sharing one PostgreSQL database.

Concurrency and rate limits are counted in the database, so they hold for every worker
together, not per process; and leases are judged by the database's clock, so a worker
whose wall clock is wrong does not take work another worker still holds. Each test also
shows it could fail: the limit was reached (not everything ran one at a time), and the
worker with the wrong clock was up and claiming work while the lease was live.

Runs are started from the test process; ``keel worker`` processes execute them. Waits
poll the database under a deadline that only guards against a hang.
"""

from __future__ import annotations

import bisect
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keel.engine.events import NodeReclaimed, NodeStarted
from keel.engine.state import is_finished
from keel.runtime.operations.control import start_run
from keel.runtime.owner import Owner
from keel.store import Store
from tests.chaos import limitflow
from tests.postgres import fresh_url, open_postgres

HERE = Path(__file__).parent
FLOW = HERE / "limitflow.py"
ROOT = HERE.parents[1]
#: seconds a wait may take before the test gives up (a hang guard, not a measurement)
HANG_GUARD = 45.0
SKEW = 600.0
#: what ``skewed_keel.py`` prints after each look for lost leases
LOOKED = "skewed_keel: looked for lost leases"

pytestmark = pytest.mark.slow


class Workers:
    """``keel worker`` processes on one database, each logging to its own file."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "KEEL_TEST_SPANS": str(tmp_path / "spans.txt"),
            "KEEL_TEST_RELEASE": str(tmp_path / "release"),
            "KEEL_TEST_SLEEP": "0.2",
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str, skew: float | None = None) -> subprocess.Popen[bytes]:
        """Start a worker; ``skew``: through ``skewed_keel.py``, its clock that far ahead."""
        env = dict(self.env)
        command = [sys.executable, "-m", "keel"]
        if skew is not None:
            env["KEEL_TEST_CLOCK_SKEW"] = str(skew)
            command = [sys.executable, str(HERE / "skewed_keel.py")]
        with self.log_path(name).open("ab") as out:
            proc = subprocess.Popen(
                [*command, "worker", str(FLOW), "--concurrency", "8", "--db", self.url, *args],
                env=env, cwd=ROOT, stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip
        self.procs[name] = proc
        return proc

    def log_path(self, name: str) -> Path:
        return self.tmp_path / f"worker-{name}.log"

    def log(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- worker {name} ---\n{self.log(name)[-3000:]}" for name in self.procs)

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Poll ``condition`` while every worker stays up, until the hang guard."""
        deadline = time.monotonic() + HANG_GUARD
        while not condition():
            for name, proc in self.procs.items():
                assert proc.poll() is None, f"worker {name} exited\n{self.logs()}"
            if time.monotonic() > deadline:
                pytest.fail(f"gave up waiting for {what}\n{self.logs()}")
            time.sleep(0.05)

    def wait_ready(self, *names: str) -> None:
        """Until each worker has announced itself (it is about to claim)."""
        self.wait_until(
            lambda: all("  modules: " in self.log(name) for name in names), "the workers to start"
        )

    def stop(self) -> None:
        Path(self.env["KEEL_TEST_RELEASE"]).touch()  # a held attempt need not wait
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def store_url() -> Iterator[tuple[Store, str]]:
    url = fresh_url()
    store = open_postgres(url)
    try:
        yield store, url
    finally:
        store.drop_schema()
        store.close()


@pytest.fixture
def workers(store_url: tuple[Store, str], tmp_path: Path) -> Iterator[Workers]:
    running = Workers(store_url[1], tmp_path)
    try:
        yield running
    finally:
        running.stop()


def _finished(store: Store, run_ids: list[str]) -> Callable[[], bool]:
    return lambda: all(is_finished(store.get_run(run_id).status) for run_id in run_ids)


def _started(store: Store, run_id: str) -> list[tuple[float, NodeStarted]]:
    """The run's NodeStarted events with their ``at`` (the claim's time)."""
    return [(s.at, s.event) for s in store.history(run_id) if isinstance(s.event, NodeStarted)]


def _pid(worker: str) -> int:
    owner = Owner.parse(worker)
    assert owner is not None, worker
    return owner.pid


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one moment (a span ending as another starts: not both)."""
    edges = sorted([(end, -1) for _, end in spans] + [(start, 1) for start, _ in spans])
    most = open_now = 0
    for _, step in edges:
        open_now += step
        most = max(most, open_now)
    return most


@pytest.mark.timeout(90)
def test_a_concurrency_limit_holds_across_worker_processes(
    store_url: tuple[Store, str], workers: Workers, tmp_path: Path
) -> None:
    """30 runs over 2 tenants, at most 2 attempts at once per tenant: the bodies' own
    start and end times (one host, one clock) never show 3 of a tenant overlapping,
    and do show 2, with both tenants running side by side."""
    store, _ = store_url
    for name in ("a", "b", "c"):
        workers.start(name)
    workers.wait_ready("a", "b", "c")
    spec = limitflow.tenant_sync.spec
    run_ids = [
        start_run(store, spec, {"tenant": tenant, "index": i}, origin="test").id
        for i in range(15)
        for tenant in ("acme", "globex")
    ]
    workers.wait_until(_finished(store, run_ids), "the runs to finish")

    assert [store.get_run(r).status for r in run_ids] == ["succeeded"] * len(run_ids)
    spans: dict[str, list[tuple[float, float]]] = {"acme": [], "globex": []}
    for line in (tmp_path / "spans.txt").read_text().splitlines():
        tenant, start, end = line.split()
        spans[tenant].append((float(start), float(end)))
    assert {t: len(s) for t, s in spans.items()} == {"acme": 15, "globex": 15}
    most = {tenant: _most_at_once(s) for tenant, s in spans.items()}
    assert most == {"acme": 2, "globex": 2}, "at most 2 per tenant, and the limit was reached"
    assert any(
        a_start < b_end and b_start < a_end
        for a_start, a_end in spans["acme"]
        for b_start, b_end in spans["globex"]
    ), "the tenants' attempts ran side by side: the limit is per key"
    pids = {_pid(event.worker) for r in run_ids for _, event in _started(store, r)}
    assert len(pids) >= 2, "the attempts were spread over several workers"


@pytest.mark.timeout(90)
def test_a_rate_limit_holds_across_worker_processes(
    store_url: tuple[Store, str], workers: Workers
) -> None:
    """30 runs of a node limited to 5 starts per second on one key: no window of one
    second (ending at any start) holds more than 5 starts, and some holds 5."""
    store, _ = store_url
    for name in ("a", "b", "c"):
        workers.start(name)
    workers.wait_ready("a", "b", "c")
    spec = limitflow.api_call.spec
    run_ids = [start_run(store, spec, {"index": i}, origin="test").id for i in range(30)]
    workers.wait_until(_finished(store, run_ids), "the runs to finish")

    assert [store.get_run(r).status for r in run_ids] == ["succeeded"] * len(run_ids)
    started = [_started(store, r) for r in run_ids]
    assert [len(s) for s in started] == [1] * len(run_ids), "each attempt started once"
    # the claims' times, as the limiter saw them (NodeStarted is written with the claim)
    starts = sorted(at for ((at, _),) in started)
    in_window = [i + 1 - bisect.bisect_right(starts, t - 1.0) for i, t in enumerate(starts)]
    assert max(in_window) == 5, f"at most 5 starts in any second, and 5 were reached: {starts}"
    pids = {_pid(event.worker) for ((_, event),) in started}
    assert len(pids) >= 2, "the attempts were spread over several workers"


@pytest.mark.timeout(90)
def test_a_worker_whose_clock_is_ahead_does_not_take_live_work(
    store_url: tuple[Store, str], workers: Workers, tmp_path: Path
) -> None:
    """A worker whose wall clock is 10 minutes ahead would see every lease as expired
    (a lease runs to the database's now + 30 s) if it judged them by its own clock. It
    runs beside the lease's holder for more than one of its reclaim intervals, claiming
    other work, and leaves the held attempt alone."""
    store, _ = store_url
    holder = workers.start("a", "--queues", "default")
    workers.wait_ready("a")
    held_run = start_run(store, limitflow.hold.spec, {}, origin="test").id
    workers.wait_until(lambda: bool(_started(store, held_run)), "worker a to claim the run")

    skewed = workers.start("b", "--queues", "default,skewed", skew=SKEW)
    looked_from = time.time()
    workers.wait_ready("b")
    ping_run = start_run(store, limitflow.ping.spec, {}, origin="test").id
    workers.wait_until(_finished(store, [ping_run]), "worker b to run the ping")
    ping = store.get_run(ping_run)
    assert (ping.status, ping.output) == ("succeeded", {"result": skewed.pid}), "b was up"
    (ping_started,) = _started(store, ping_run)
    assert _pid(ping_started[1].worker) == skewed.pid
    reading = re.search(r"skewed_keel: time\.time\(\) reads ([0-9.]+)", workers.log("b"))
    assert reading is not None, workers.log("b")
    assert abs(float(reading.group(1)) - looked_from - SKEW) < 30, "b's clock was ahead"

    # b looks for lost leases twice more, by a clock that would call the held lease
    # expired long ago: waited for, not slept for (skewed_keel says when it looked)
    looks = workers.log("b").count(LOOKED)
    workers.wait_until(lambda: workers.log("b").count(LOOKED) >= looks + 2, "b to look twice")
    assert not is_finished(store.get_run(held_run).status), "the lease was live all along"
    (tmp_path / "release").touch()
    workers.wait_until(_finished(store, [held_run]), "the held run to finish")

    history = store.history(held_run)
    reclaimed = [s.event for s in history if isinstance(s.event, NodeReclaimed)]
    assert reclaimed == [], f"a live lease was taken back: {reclaimed}"
    started = [s.event for s in history if isinstance(s.event, NodeStarted)]
    assert [(e.node, e.attempt) for e in started] == [("held", 1)]
    assert _pid(started[0].worker) == holder.pid
    record = store.get_run(held_run)
    assert (record.status, record.output) == ("succeeded", {"result": holder.pid}), record.reason
