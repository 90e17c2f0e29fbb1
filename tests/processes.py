"""Helpers for tests that start real processes: run keel, stop them, tell when one is gone,
wait for what they do."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: how long a test waits for a process to do something: generous, as nothing asserts
#: on durations
DEADLINE = 60.0


def stop_workers(workers: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process still running and wait for it (SIGKILL if it hangs)."""
    workers = list(workers)
    for proc in workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in workers:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie whose parent (init in a container, say) has not reaped it yet
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


ROOT = Path(__file__).resolve().parents[1]


def keel_on(url: str, *args: str, deadline: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``keel ARGS`` as a new process on the database ``url`` (KEEL_DATABASE_URL)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "keel", *args], env=env, capture_output=True, text=True,
        timeout=deadline, check=False,
    )  # fmt: skip


def until(what: str, check: Callable[[], T | None], deadline: float = DEADLINE) -> T:
    """Poll ``check`` until it gives something true, and return that; fail naming
    ``what`` if it has not within ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {deadline:.0f} s: {what}")


def free_port() -> int:
    """A TCP port free on the loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
