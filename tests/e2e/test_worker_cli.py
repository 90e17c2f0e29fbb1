"""``keel worker`` and ``keel db upgrade`` in real processes against PostgreSQL: runs
started with ``keel run --detach`` are executed by workers, a worker takes only its
queues, SIGTERM gives back what it cannot finish in its grace period, and bad settings
are refused naming the setting. Waits for background work poll with a generous
deadline; nothing asserts on durations."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from keel.engine.events import NodeReclaimed, NodeStarted
from keel.store.protocol import Store
from tests.postgres import fresh_url, open_postgres
from tests.processes import keel_on, process_gone, until

ROOT = Path(__file__).resolve().parents[2]
FLOWS = Path(__file__).resolve().with_name("workerflows.py")
DEADLINE = 60.0

pytestmark = pytest.mark.slow


def keel(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return keel_on(url, *args, deadline=DEADLINE)


def worker(url: str, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": url}
    with (tmp_path / f"worker-{time.monotonic_ns()}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "keel", "worker", str(FLOWS), *args], env=env,
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def detach(url: str, workflow: str, *inputs: str) -> str:
    done = keel(url, "run", f"{FLOWS}:{workflow}", *inputs, "--detach")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=DEADLINE)


def test_db_upgrade_applies_migrations_once() -> None:
    address = fresh_url()
    try:
        first = keel(address, "db", "upgrade")
        again = keel(address, "db", "upgrade")
    finally:
        leftover = open_postgres(address)
        leftover.close()  # an unclosed pool would warn in whichever test runs next
        leftover.drop_schema()
    assert first.returncode == 0, first.stderr
    assert "applied 0001_initial" in first.stdout
    assert "up to date" in again.stdout


def test_a_run_left_on_the_queue_is_executed_by_a_worker(
    url: str, store: Store, tmp_path: Path
) -> None:
    run_id = detach(url, "hello", "-i", "name=ann")
    assert store.get_run(run_id).status == "running"  # --detach started nothing here

    proc = worker(url, tmp_path, "--concurrency", "2")
    try:
        until("the run succeeded", lambda: store.get_run(run_id).status == "succeeded")
    finally:
        assert stop(proc) == 0
    assert store.get_run(run_id).output == {"result": "hello ann"}


def test_a_worker_takes_only_its_queues(url: str, store: Store, tmp_path: Path) -> None:
    ordinary = detach(url, "hello", "-i", "name=bo")
    other = detach(url, "elsewhere", "-i", "name=cy")
    default_only = worker(url, tmp_path, "--queues", "default")
    try:
        until("the default-queue run succeeded",
              lambda: store.get_run(ordinary).status == "succeeded")  # fmt: skip
        # both were queued before the worker started, so it would have taken both at once
        assert not any(isinstance(e.event, NodeStarted) for e in store.history(other))
    finally:
        assert stop(default_only) == 0

    special = worker(url, tmp_path, "--queues", "special")
    try:
        until("the special-queue run succeeded",
              lambda: store.get_run(other).status == "succeeded")  # fmt: skip
    finally:
        assert stop(special) == 0


def test_sigterm_gives_back_what_does_not_finish_within_the_grace(
    url: str, store: Store, tmp_path: Path
) -> None:
    run_id = detach(url, "sleepy", "-i", "seconds=30")
    proc = worker(url, tmp_path, "--grace", "0")
    until("the step started", lambda: any(
        isinstance(e.event, NodeStarted) for e in store.history(run_id)))  # fmt: skip

    assert stop(proc) == 0

    reclaimed = [e.event for e in store.history(run_id) if isinstance(e.event, NodeReclaimed)]
    assert [(event.node, event.reason) for event in reclaimed] == [("slow", "worker stopped")]
    assert store.leases(run_id) == []
    assert store.ready_count(run_id) == 1  # back on the queue for another worker


def test_a_stopped_worker_leaves_no_child_process_of_an_attempt_it_gave_back(
    url: str, store: Store, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    run_id = detach(url, "sleepy_in_process", "-i", f"pid_file={pid_file}")
    proc = worker(url, tmp_path, "--grace", "0")
    until("the step's process started", pid_file.exists)

    assert stop(proc) == 0

    assert store.ready_count(run_id) == 1  # given back, to run again elsewhere
    child = int(pid_file.read_text())
    until("the step's process is gone", lambda: process_gone(child))


def test_bad_settings_are_refused_naming_the_setting(url: str, tmp_path: Path) -> None:
    bad_queue = keel(url, "worker", str(FLOWS), "--queues", "no spaces!")
    assert bad_queue.returncode == 1
    assert "--queues" in bad_queue.stderr
    (tmp_path / "keel.toml").write_text("concurency = 4\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": url}
    typo = subprocess.run(
        [sys.executable, "-m", "keel", "worker", str(FLOWS)], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=DEADLINE, check=False,
    )  # fmt: skip
    assert typo.returncode == 1
    assert "concurency" in typo.stderr
    assert "keel.toml" in typo.stderr


def test_the_worker_banner_does_not_show_the_database_password(url: str, tmp_path: Path) -> None:
    parts = urlsplit(url)
    user, secret = parts.username or "postgres", parts.password or "s3cret"
    netloc = f"{user}:{secret}@{parts.hostname}:{parts.port or 5432}"
    with_password = urlunsplit(
        (parts.scheme, netloc, parts.path, f"{parts.query}&password={secret}", "")
    )
    proc = worker(with_password, tmp_path)
    (log,) = tmp_path.glob("worker-*.log")
    try:
        until("the worker announced itself", lambda: " modules: " in log.read_text())
    finally:
        assert stop(proc) == 0
    shown = log.read_text()
    assert secret not in shown
    assert f"{user}:***@{parts.hostname}" in shown
    assert "password=***" in shown


def banner(url: str, folder: Path, *args: str) -> str:
    """The log of a worker started with ``args`` and stopped once it announced itself."""
    folder.mkdir()
    proc = worker(url, folder, *args)
    (log,) = folder.glob("worker-*.log")
    try:
        until("the worker announced itself", lambda: " modules: " in log.read_text())
    finally:
        assert stop(proc) == 0
    return log.read_text()


def test_the_banner_says_when_no_task_runs_on_the_worker_thread(url: str, tmp_path: Path) -> None:
    """The lines are written from the options the worker was built with, so they show
    that ``--no-inline`` reached them."""
    off = banner(url, tmp_path / "off", "--no-inline")
    default = banner(url, tmp_path / "default")
    assert "  inline: off (every task runs on a task thread)" in off.splitlines()
    assert "  inline: on (tasks proven under 1 ms run on this thread)" in default.splitlines()
    assert any(line.endswith(", 8 at once") for line in default.splitlines())
    assert all(len(line) <= 80 for line in default.splitlines() if "store:" not in line)


def test_detach_says_when_no_live_worker_takes_the_runs_queue(
    url: str, store: Store, tmp_path: Path
) -> None:
    lonely = keel(url, "run", f"{FLOWS}:elsewhere", "-i", "name=ed", "--detach")

    assert lonely.returncode == 0, lonely.stderr
    assert store.get_run(lonely.stdout.strip()).status == "running"  # queued all the same
    hint = f"no live worker takes queue special: start one with `keel worker {FLOWS}`"
    assert hint in lonely.stderr

    proc = worker(url, tmp_path, "--queues", "default")
    try:
        until("the worker is listed", lambda: len(store.live_workers(seen_since=0.0)) == 1)
        served = keel(url, "run", f"{FLOWS}:hello", "-i", "name=fay", "--detach")
        unserved = keel(url, "run", f"{FLOWS}:elsewhere", "-i", "name=gus", "--detach")
    finally:
        assert stop(proc) == 0

    assert served.returncode == 0, served.stderr
    assert "no live worker" not in served.stderr
    assert unserved.returncode == 0, unserved.stderr
    assert "no live worker takes queue special" in unserved.stderr
    assert store.live_workers(seen_since=0.0) == []  # a clean stop leaves the list
