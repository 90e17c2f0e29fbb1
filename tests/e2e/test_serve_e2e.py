"""``keel serve`` end to end, in real processes over real HTTP: a workflow deployed with
``keel deploy``, tokens made with ``keel token create``, runs started, refused and
approved over the API, and executed by ``keel worker`` processes (PostgreSQL) or by the
server's own worker (``--with-worker``, SQLite).

Every process is stopped in a ``finally``; ports are free ones the OS gave. Waits poll
with a generous deadline; nothing asserts on durations."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.postgres import fresh_url, open_postgres
from tests.processes import free_port, keel_on, stop_workers

ROOT = Path(__file__).resolve().parents[2]
FLOWS = Path(__file__).resolve().with_name("serveflows.py")
DEADLINE = 60.0

pytestmark = pytest.mark.slow

#: name -> (role, groups) of the tokens every scenario makes
TOKENS = {
    "ops-admin": ("admin", ""),
    "ops": ("operator", ""),
    "fin-approver": ("approver", "finance"),
    "hr-approver": ("approver", "hr"),
    "watcher": ("viewer", ""),
}


def keel(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return keel_on(url, *args, deadline=DEADLINE)


def spawn(url: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": url}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "keel", *args], env=env,
                                stdout=out, stderr=out, stdin=subprocess.DEVNULL)  # fmt: skip


def until(what: str, check: Callable[[], Any], logs: Sequence[Path] = ()) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    shown = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
    raise AssertionError(f"not within {DEADLINE:.0f} s: {what}\n{shown}")


@dataclass
class Served:
    base: str
    tokens: dict[str, str]
    logs: list[Path]

    def client(self, name: str) -> httpx2.Client:
        return httpx2.Client(base_url=self.base, trust_env=False, timeout=30.0,
                             headers={"Authorization": f"Bearer {self.tokens[name]}"})  # fmt: skip


def prepare(url: str) -> dict[str, str]:
    """Deploy the workflow and make the tokens, as an admin would (CLI on the database)."""
    deployed = keel(url, "deploy", str(FLOWS))
    assert deployed.returncode == 0, deployed.stderr
    assert "deployed payment" in deployed.stdout
    tokens = {}
    for name, (role, groups) in TOKENS.items():
        made = keel(url, "token", "create", name, "--role", role, "--groups", groups)
        assert made.returncode == 0, made.stderr
        assert made.stdout.startswith("keel_"), made.stdout  # the secret alone on stdout
        tokens[name] = made.stdout.strip()
    return tokens


def answering(base: str) -> bool:
    try:
        return httpx2.get(f"{base}/ready", trust_env=False, timeout=2.0).status_code == 200
    except httpx2.TransportError:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    address = fresh_url()
    store = open_postgres(address)
    store.close()
    try:
        yield address
    finally:
        leftover = open_postgres(address)
        leftover.close()
        leftover.drop_schema()


@pytest.fixture
def on_postgres(postgres_url: str, tmp_path: Path) -> Iterator[Served]:
    """``keel serve`` (no worker of its own) and two ``keel worker`` processes."""
    tokens = prepare(postgres_url)
    port = free_port()
    logs = [tmp_path / "serve.log", tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(spawn(postgres_url, logs[0], "serve", str(FLOWS), "--port", str(port),
                               "--db", postgres_url))  # fmt: skip
        for log in logs[1:]:
            processes.append(spawn(postgres_url, log, "worker", str(FLOWS)))
        base = f"http://127.0.0.1:{port}"
        until("keel serve answers /ready", lambda: answering(base), logs)
        yield Served(base, tokens, logs)
    finally:
        stop_workers(processes)
    assert [p.returncode for p in processes] == [0, 0, 0], [log.read_text() for log in logs]


@pytest.fixture
def on_sqlite(tmp_path: Path) -> Iterator[Served]:
    """``keel serve --with-worker``: the API and a worker in one process."""
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    tokens = prepare(url)
    port = free_port()
    log = tmp_path / "serve.log"
    server = spawn(url, log, "serve", str(FLOWS), "--with-worker", "--port", str(port))
    try:
        base = f"http://127.0.0.1:{port}"
        until("keel serve answers /ready", lambda: answering(base), [log])
        yield Served(base, tokens, [log])
    finally:
        stop_workers([server])
    # SIGTERM stops the API, then its worker (which says so), then the process exits 0
    assert server.returncode == 0, log.read_text()
    assert "stopped" in log.read_text().rsplit("Shutting down", 1)[1], log.read_text()


def start_three_times_at_once(served: Served) -> str:
    """The same Idempotency-Key sent by three threads at once starts one run."""
    body = {"workflow": "payment", "input": {"amount": 12.5}}

    def start(_: int) -> httpx2.Response:
        with served.client("ops") as client:
            return client.post("/runs", json=body, headers={"Idempotency-Key": "pay-12.5"})

    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(start, range(3)))
    assert sorted(a.status_code for a in answers) == [200, 200, 201], [a.text for a in answers]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    run_id: str = ids.pop()
    assert {a.headers["location"] for a in answers} == {f"/runs/{run_id}"}
    with served.client("watcher") as client:
        listed = client.get("/runs", params={"workflow": "payment"}).json()["runs"]
    assert [r["id"] for r in listed] == [run_id]
    assert listed[0]["started_by"] == "ops"
    return run_id


def scenario(served: Served) -> None:
    run_id = start_three_times_at_once(served)
    with served.client("watcher") as watcher:

        def waiting() -> bool:
            found = watcher.get("/approvals", params={"run_id": run_id}).json()["approvals"]
            return [a["node"] for a in found] == ["check"]

        until("the run waits at its approval", waiting, served.logs)
        before = watcher.get(f"/runs/{run_id}/history").json()["events"]

        with served.client("hr-approver") as wrong:
            refused = wrong.post(f"/runs/{run_id}/approvals/check/approve", json={})
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "hr-approver" in refused.json()["detail"]
        after = watcher.get(f"/runs/{run_id}/history").json()["events"]
        assert len(after) == len(before)
        assert after[-1]["seq"] == before[-1]["seq"]
        assert watcher.get(f"/runs/{run_id}").json()["status"] == "running"

        with served.client("watcher") as viewer:
            started = viewer.post("/runs", json={"workflow": "payment", "input": {"amount": 1}})
        assert started.status_code == 403, started.text
        assert (
            watcher.get("/runs", params={"workflow": "payment"}).json()["runs"][0]["id"] == run_id
        )

        with served.client("fin-approver") as right:
            approved = right.post(f"/runs/{run_id}/approvals/check/approve",
                                  json={"comment": "fine"})  # fmt: skip
        assert approved.status_code == 200, approved.text

        def ended() -> dict[str, Any] | None:
            run: dict[str, Any] = watcher.get(f"/runs/{run_id}").json()
            return run if run["status"] in ("succeeded", "failed", "cancelled") else None

        run = until("the approved run ends", ended, served.logs)
        assert run["status"] == "succeeded", run
        assert run["output"] == {"result": "booked 12.5"}
        events = watcher.get(f"/runs/{run_id}/history").json()["events"]
        decided = [e for e in events if e["kind"] == "approval_decided"]
        assert len(decided) == 1
        assert decided[0]["node"] == "check"
        assert decided[0]["data"]["by"] == "fin-approver"
        assert decided[0]["data"]["approved"] is True
        assert watcher.get(f"/runs/{run_id}/verify").json()["intact"] is True


def test_serve_with_two_workers_on_postgres(on_postgres: Served) -> None:
    scenario(on_postgres)


def test_serve_with_its_own_worker_on_sqlite(on_sqlite: Served) -> None:
    scenario(on_sqlite)
