"""W8: run starts through the HTTP API (issue 18), on SQLite and on PostgreSQL.

A real ``keel serve`` process (no worker: the runs are only recorded) on a free loopback
port with ``--rate-limit 0``, ``bench/api_chain.yaml`` deployed and an operator token
made with the ``keel`` command, as an operator would. Then ``CLIENTS`` threads, each with
one keep-alive ``httpx2.Client``, share SIZE ``POST /runs`` between them, all starting
together once every client has made ``WARM_UP`` requests (connections open, the server's
caches filled). Figures:

* ``starts_per_second``: SIZE over the time from the start signal to the last answer;
* ``p50_ms`` / ``p99_ms``: the latency of one request as its client saw it;
* ``server_cpu_ms`` / ``client_cpu_ms``: CPU time per start of the server process and of
  this one (the clients) in that window. The clients share the machine's cores with the
  server, so on a small machine their CPU is part of what limits the rate.

Every answer must be 201, and the store must hold exactly the runs started.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.distributed import UnavailableError, fresh_database, stop_processes

ROOT = Path(__file__).resolve().parents[1]
FLOW = ROOT / "bench" / "api_chain.yaml"
WORKFLOW = "api-chain"
CLIENTS = 16
#: requests each client makes before the measurement (not counted)
WARM_UP = 4
#: a hang guard for the server's start and for one request, not a measurement
DEADLINE = 60.0


def api_starts(n: int, sync: str) -> dict[str, Any]:
    """SIZE run starts over the API on SQLite: starts/s, p50 and p99 in ms."""
    return _measure("sqlite", n, sync)


def api_starts_pg(n: int, sync: str) -> dict[str, Any]:
    """The same on PostgreSQL (a fresh schema); ``skipped`` when it is not available."""
    try:
        return _measure("postgres", n, sync)
    except UnavailableError as exc:
        return {"skipped": str(exc)}


def _measure(backend: str, n: int, sync: str) -> dict[str, Any]:
    with fresh_database(backend, sync) as (url, store), tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "serve.log"
        token = _prepare(url, log)
        port = _free_port()
        server = _serve(url, port, log)
        try:
            _wait_until_up(server, port, log)
            result = _load(f"http://127.0.0.1:{port}", token, n, server.pid)
        finally:
            stop_processes([server])
        if result.pop("errors"):
            raise SystemExit(f"{result['first_error']}\nserver log:\n{_tail(log)}")
        recorded = len(store.list_runs(workflow=WORKFLOW, limit=n + CLIENTS * WARM_UP + 1))
    expected = n + CLIENTS * WARM_UP
    assert recorded == expected, f"{recorded} runs recorded, {expected} started"
    return {**result, "backend": backend, "clients": CLIENTS}


def _keel(*args: str, log: Path) -> str:
    """Run ``keel ARGS`` to the end; its stdout (stderr goes to the log)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as err:
        out = subprocess.run([sys.executable, "-m", "keel", *args], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=err, check=False)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"keel {' '.join(args[:2])} failed:\n{_tail(log)}")
    return out.stdout.decode()


def _prepare(url: str, log: Path) -> str:
    """Deploy the workflow and make an operator token; the token."""
    _keel("deploy", str(FLOW), "--db", url, log=log)
    return _keel("token", "create", "bench", "--role", "operator", "--db", url,
                 log=log).strip()  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _serve(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "keel", "serve", "--port", str(port), "--db", url,
             "--rate-limit", "0"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip


def _wait_until_up(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    import httpx2

    deadline = time.monotonic() + DEADLINE
    while True:
        if server.poll() is not None:
            raise SystemExit(f"keel serve exited ({server.returncode}):\n{_tail(log)}")
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"keel serve did not answer within {DEADLINE} s:\n{_tail(log)}")
        time.sleep(0.02)


def _tail(log: Path, size: int = 3000) -> str:
    return log.read_text(errors="replace")[-size:] if log.exists() else ""


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux's /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load(base: str, token: str, n: int, server_pid: int) -> dict[str, Any]:
    """``n`` starts by ``CLIENTS`` threads, all beginning together after their warm-up."""
    import httpx2

    shares = [n // CLIENTS + (1 if index < n % CLIENTS else 0) for index in range(CLIENTS)]
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    errors: list[str] = []
    ready = threading.Barrier(CLIENTS + 1)

    def post(client: httpx2.Client, value: int) -> None:
        try:
            answer = client.post("/runs", json={"workflow": WORKFLOW, "input": {"start": value}})
        except httpx2.HTTPError as exc:
            errors.append(f"POST /runs failed: {exc!r}")
            return
        if answer.status_code != 201:
            errors.append(f"POST /runs answered {answer.status_code}: {answer.text[:500]}")

    def client_thread(index: int) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx2.Client(base_url=base, headers=headers, timeout=DEADLINE) as client:
            try:
                for value in range(WARM_UP):
                    post(client, value)
            finally:
                ready.wait()
            mine = latencies[index]
            for value in range(shares[index]):
                began = time.perf_counter()
                post(client, value)
                mine.append(time.perf_counter() - began)

    threads = [threading.Thread(target=client_thread, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    ready.wait()
    server_cpu, client_cpu = _cpu_seconds(server_pid), time.process_time()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    server_used = _cpu_seconds(server_pid)
    client_used = time.process_time() - client_cpu
    every = sorted(latency for mine in latencies for latency in mine)
    cuts = statistics.quantiles(every, n=100, method="inclusive") if len(every) > 1 else every * 99
    return {
        "starts_per_second": n / elapsed,
        "p50_ms": statistics.median(every) * 1e3,
        "p99_ms": cuts[98] * 1e3,
        "max_ms": every[-1] * 1e3,
        "server_cpu_ms": None if server_used is None or server_cpu is None
        else (server_used - server_cpu) / n * 1e3,
        "client_cpu_ms": client_used / n * 1e3,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
    }  # fmt: skip
