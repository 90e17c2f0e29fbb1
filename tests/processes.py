"""Helpers for tests that start real processes: run keel, stop them, tell when one is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path


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
