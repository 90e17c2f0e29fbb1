"""Alerts in real processes: the rules of a ``keel.toml`` are evaluated by ``keel worker``
(PostgreSQL) and by ``keel serve`` without a worker of its own (SQLite), which tell a
real webhook receiver once; a stopped process gives its lease back; a wrong rule stops
the process at once with one line. Waits poll with a generous deadline; nothing asserts
on durations."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.store.protocol import Store
from keel.store.sqlite import SQLiteStore
from keel.store.writes import SetStatus, Transition
from tests.contract.conftest import Driver, make_spec
from tests.postgres import fresh_url, open_postgres
from tests.remote.conftest import free_port
from tests.unit.test_notify import RecordingServer, serving

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60.0

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver() -> Iterator[RecordingServer]:
    with serving() as server:
        yield server


def keel_toml(folder: Path, receiver: RecordingServer, **changes: Any) -> None:
    rule = {"name": "claims-failing", "kind": "failure_rate", "workflow": "claim",
            "window": "1h", "above": 0.5, "min_runs": 2, "notify": ["ops"], **changes}  # fmt: skip
    lines = ["[notifiers.ops]", 'kind = "webhook"', f'url = "{receiver.url}"', "",
             "[[alerts]]",
             *(f"{key} = {json.dumps(value)}" for key, value in rule.items())]  # fmt: skip
    (folder / "keel.toml").write_text("\n".join(lines) + "\n")


def failed_runs(store: Store, count: int) -> None:
    """Runs of ``claim`` that failed just now (by the database's clock, for PostgreSQL)."""
    now = store.database_time() or time.time()
    for n in range(count):
        driver = Driver(store, make_spec("claim"), f"claim-{n}")
        driver.now = now - 60
        driver.start()
        last = store.get_run(driver.run_id).last_seq
        (done,) = store.commit([Transition(driver.run_id, last, now, [], [SetStatus("failed")])])
        assert done.error is None


def spawn(url: str, cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": url}
    with (cwd / f"keel-{time.monotonic_ns()}.log").open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "keel", *args], env=env, cwd=cwd,
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL)  # fmt: skip


def until(what: str, check: Callable[[], Any], cwd: Path) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    logs = "\n".join(log.read_text()[-3000:] for log in cwd.glob("keel-*.log"))
    raise AssertionError(f"not within {DEADLINE:.0f} s: {what}\n{logs}")


def stopped(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=DEADLINE)


@pytest.fixture
def postgres() -> Iterator[tuple[str, Store]]:
    address = fresh_url()
    store = open_postgres(address)
    yield address, store
    store.close()
    store.drop_schema()


def test_a_worker_evaluates_the_rules_of_its_keel_toml_and_gives_the_lease_back(
    postgres: tuple[str, Store], receiver: RecordingServer, tmp_path: Path
) -> None:
    url, store = postgres
    failed_runs(store, 3)
    keel_toml(tmp_path, receiver)
    worker = spawn(url, tmp_path, "worker")
    try:
        until("the webhook is told", lambda: receiver.requests, tmp_path)
        (firing,) = until("the state is recorded", store.alert_states, tmp_path)
        assert (firing.state, firing.value) == ("firing", 1.0)
    finally:
        assert stopped(worker) == 0
    told = json.loads(receiver.requests[0].body)
    assert (told["event"], told["alert"], told["incident"]) == (
        "alert_firing", "claims-failing", firing.incident)  # fmt: skip
    now = store.database_time()
    assert now is not None
    assert store.hold_alert_lease("next-process", now, 30)  # given back when it stopped
    assert len(receiver.requests) == 1


def test_keel_serve_evaluates_and_delivers_without_a_worker(
    receiver: RecordingServer, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "keel.db")
    try:
        failed_runs(store, 2)
    finally:
        store.close()
    keel_toml(tmp_path, receiver, severity="page")
    server = spawn(f"sqlite:///{tmp_path / 'keel.db'}", tmp_path, "serve", "--port",
                   str(free_port()))  # fmt: skip
    try:
        until("the webhook is told", lambda: receiver.requests, tmp_path)
    finally:
        assert stopped(server) == 0
    told = json.loads(receiver.requests[0].body)
    assert (told["event"], told["severity"]) == ("alert_firing", "page")
    log = "\n".join(path.read_text() for path in tmp_path.glob("keel-*.log"))
    assert "alerts: 1 rules" in log


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_a_wrong_rule_stops_the_process_with_one_line(
    command: str, receiver: RecordingServer, tmp_path: Path
) -> None:
    keel_toml(tmp_path, receiver, above=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "KEEL_DATABASE_URL": f"sqlite:///{tmp_path / 'keel.db'}"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "keel", command], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=DEADLINE,
                          check=False)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == (
        f"keel {command}: keel.toml ({tmp_path / 'keel.toml'}): alert 'claims-failing': "
        "above: Input should be less than or equal to 1\n"
    )
