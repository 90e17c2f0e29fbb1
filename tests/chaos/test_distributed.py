"""A chaos test with real processes on PostgreSQL: four ``keel worker`` processes execute
500 runs of a fan-out workflow while a controller SIGKILLs a random worker every few
seconds and starts a replacement. Every run must complete with the right output, each
result must be recorded exactly once, and every re-execution of an attempt must be
explained by the death of its lease holder: the earlier ``NodeStarted`` names a worker
the controller killed, and a ``NodeReclaimed`` naming that worker comes before the
attempt starts again. The tasks append their idempotency keys to a file, so the test
also checks that nothing ran without being started in the history.
"""

from __future__ import annotations

import collections
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from keel.engine.events import NodeReclaimed, NodeStarted, NodeSucceeded
from keel.runtime.operations.control import start_run
from keel.runtime.owner import Owner
from keel.store.chain import verify_chain
from tests.chaos import fanflow
from tests.postgres import fresh_url, open_postgres

if TYPE_CHECKING:
    from keel.store.postgres import PostgresStore

HERE = Path(__file__).parent
FLOW = HERE / "fanflow.py"
ROOT = HERE.parents[1]
RUNS = 500
WORKERS = 4
SEED = 7
#: seconds between kills, drawn at random
KILL_EVERY = (1.5, 3.0)
#: a hang guard, not a timed assertion
DEADLINE = 300.0

pytestmark = pytest.mark.slow

#: (node, item, attempt): one attempt, the same across its re-executions
Attempt = tuple[str, int | None, int]


class Fleet:
    """The worker processes: started, killed and stopped by the controller."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "KEEL_TEST_KEYS": str(tmp_path / "keys.txt"),
            "KEEL_TEST_SLEEP": "0.2",
            "PYTHONPATH": str(ROOT),
        }
        self.running: list[subprocess.Popen[bytes]] = []
        self.logs_of: dict[int, Path] = {}
        self.killed: set[int] = set()
        self.started = 0

    def start(self) -> None:
        self.started += 1
        log = self.tmp_path / f"worker-{self.started}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "keel", "worker", str(FLOW), "--concurrency", "8",
                 "--db", self.url],
                env=self.env, cwd=ROOT, stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip
        self.running.append(proc)
        self.logs_of[proc.pid] = log

    def kill_one(self, rng: random.Random, holding: set[int]) -> None:
        """SIGKILL a worker at random, one of those holding leases (``holding``: their
        pids) when there are any: killing an idle one would test nothing."""
        busy = [i for i, proc in enumerate(self.running) if proc.pid in holding]
        victim = self.running.pop(rng.choice(busy) if busy else rng.randrange(len(self.running)))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.killed.add(victim.pid)

    def check_alive(self) -> None:
        for proc in self.running:
            assert proc.poll() is None, f"worker {proc.pid} exited by itself\n{self.logs()}"

    def announced(self, proc: subprocess.Popen[bytes]) -> bool:
        """Whether the worker has said who it is: it handles SIGTERM from then on."""
        log = self.logs_of[proc.pid].read_text(errors="replace")
        return f":{proc.pid}:" in log

    def stop(self) -> None:
        """SIGTERM every worker still running and wait for it (SIGKILL if it hangs). A
        replacement still importing would die of SIGTERM: wait until it is ready."""
        for proc in self.running:
            for _ in range(600):
                if proc.poll() is not None or self.announced(proc):
                    break
                time.sleep(0.05)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.running:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self, tail: int = 3000) -> str:
        """The end of every worker log with a traceback (or of the last log if none has)."""
        texts = {
            path.name: path.read_text(errors="replace")
            for path in sorted(self.tmp_path.glob("worker-*.log"))
        }
        shown = {name: text for name, text in texts.items() if "Traceback" in text}
        if not shown and texts:
            name = max(texts, key=lambda n: int(n.split("-")[1].split(".")[0]))
            shown = {name: texts[name]}
        return "\n".join(f"--- {name}\n{text[-tail:]}" for name, text in shown.items())


@pytest.fixture
def database() -> Iterator[tuple[str, PostgresStore]]:
    """A fresh schema: its URL (for the workers) and a store open on it."""
    url = fresh_url()
    store = open_postgres(url)
    try:
        yield url, store
    finally:
        store.drop_schema()
        store.close()


def _ended(store: PostgresStore) -> tuple[int, list[str]]:
    """How many runs succeeded, and the ids of those that failed or were cancelled."""
    succeeded = len(store.list_runs(status="succeeded", limit=RUNS + 1))
    bad = [
        record.id
        for status in ("failed", "cancelled")
        for record in store.list_runs(status=status, limit=RUNS + 1)
    ]
    return succeeded, bad


def _keys(tmp_path: Path) -> collections.Counter[tuple[str, str, int | None, int]]:
    """Executions per (run, node, item, attempt), from the tasks' idempotency keys."""
    ran: collections.Counter[tuple[str, str, int | None, int]] = collections.Counter()
    path = tmp_path / "keys.txt"
    for key in path.read_text().split() if path.exists() else []:
        run, node, attempt = key.rsplit(":", 2)
        item = None
        if node.endswith("]"):
            node, index = node[:-1].split("[")
            item = int(index)
        ran[(run, node, item, int(attempt))] += 1
    return ran


def _killed(owner_text: str, killed: set[int]) -> bool:
    """Whether this lease holder (``host:pid:start:token``) is a worker we killed."""
    owner = Owner.parse(owner_text)
    return owner is not None and owner.pid in killed


def _check(
    store: PostgresStore,
    run_id: str,
    n: int,
    killed: set[int],
    ran: collections.Counter[tuple[str, str, int | None, int]],
) -> int:
    """Everything the kills must not break in one run; returns its reclaims."""
    record = store.get_run(run_id)
    history = store.history(run_id)
    report = verify_chain(run_id, store.chain_links(run_id), record.last_seq, record.head_hash)
    assert record.status == "succeeded", (run_id, record.reason)
    assert record.output == fanflow.expected(n), run_id
    assert report.intact, (run_id, report.problems)

    succeeded: set[tuple[str, int | None]] = set()
    starts: dict[Attempt, list[tuple[int, str]]] = collections.defaultdict(list)
    reclaims: dict[Attempt, list[tuple[int, str]]] = collections.defaultdict(list)
    for stored in history:
        event = stored.event
        if isinstance(event, NodeSucceeded):
            assert (event.node, event.item) not in succeeded, f"run {run_id}: {event} twice"
            succeeded.add((event.node, event.item))
        elif isinstance(event, NodeStarted):
            starts[(event.node, event.item, event.attempt)].append((stored.seq, event.worker))
        elif isinstance(event, NodeReclaimed):
            reclaims[(event.node, event.item, event.attempt)].append((stored.seq, event.owner))
            assert _killed(event.owner, killed), f"run {run_id}: {event} names a live worker"
    items = {("work", item) for item in range(fanflow.WIDTH)}
    assert succeeded == {("split", None), ("work", None), ("total", None)} | items, run_id

    for attempt, started in starts.items():
        for (seq, holder), (again, _) in itertools.pairwise(started):
            assert _killed(holder, killed), (
                f"run {run_id}: {attempt} started at seq {seq} by {holder} and again at seq "
                f"{again}, but that worker was not killed"
            )
            assert any(seq < at < again and by == holder for at, by in reclaims[attempt]), (
                f"run {run_id}: {attempt} started at seq {seq} by {holder} and again at seq "
                f"{again} with no reclaim naming {holder} between them: {reclaims[attempt]}"
            )
        count = ran[(run_id, *attempt)]
        assert count <= len(started), (
            f"run {run_id}: {attempt} ran {count} times but started only {len(started)} times"
        )
    # every attempt started ran at least once (the map node itself runs nothing)
    executed = {key for key in ran if key[0] == run_id}
    assert executed == {(run_id, *attempt) for attempt in starts if attempt[:2] != ("work", None)}
    return sum(len(found) for found in reclaims.values())


@pytest.mark.timeout(400)
def test_workers_killed_at_random_lose_nothing_and_repeat_only_reclaimed_work(
    database: tuple[str, PostgresStore], tmp_path: Path
) -> None:
    url, store = database
    rng = random.Random(SEED)
    fleet = Fleet(url, tmp_path)
    try:
        for _ in range(WORKERS):
            fleet.start()
        inputs = {
            start_run(store, fanflow.fan.spec, {"n": n}, origin=str(FLOW)).id: n
            for n in range(RUNS)
        }
        deadline = time.monotonic() + DEADLINE
        next_kill = time.monotonic() + rng.uniform(*KILL_EVERY)
        while True:
            succeeded, bad = _ended(store)
            assert not bad, f"runs ended badly: {bad}\n{fleet.logs()}"
            if succeeded == RUNS:
                break
            assert time.monotonic() < deadline, (
                f"only {succeeded} of {RUNS} runs succeeded in {DEADLINE} s\n{fleet.logs()}"
            )
            fleet.check_alive()
            # the first kill comes once work is under way at the latest (a fast machine
            # may finish every run before the first timed one), the others on time
            first = not fleet.killed and succeeded >= RUNS // 10
            if first or time.monotonic() >= next_kill:
                holding = {int(owner.split(":")[1]) for owner in store.lease_owners()}
                fleet.kill_one(rng, holding)
                fleet.start()
                next_kill = time.monotonic() + rng.uniform(*KILL_EVERY)
            time.sleep(0.25 if fleet.killed else 0.02)
    finally:
        fleet.stop()
    for proc in fleet.running:
        assert proc.returncode == 0, (
            f"worker {proc.pid} stopped with {proc.returncode}\n{fleet.logs()}"
        )

    ran = _keys(tmp_path)
    reclaimed = sum(_check(store, run_id, n, fleet.killed, ran) for run_id, n in inputs.items())
    assert fleet.killed, "the controller killed workers while runs were in progress"
    assert reclaimed >= 1, "a killed worker held work that was taken back"
    print(f"{len(fleet.killed)} workers killed, {reclaimed} attempts reclaimed")
