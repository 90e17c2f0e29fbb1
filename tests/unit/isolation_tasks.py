"""Task functions for the ``isolation="process"`` tests, resolved by import path
(``tests.unit.isolation_tasks:<name>``) in a child process, as a worker would.

Tasks that start subprocesses write their pids to a file the test names, so the test
can check which processes are still alive afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import keel


@keel.task
def add(a: int, b: int) -> dict[str, Any]:
    return {"sum": a + b, "parts": [a, b], "nested": {"ok": True, "none": None}}


@keel.task
def chatty(n: int) -> list[int]:
    print("this is not the answer")
    print('{"output": "forged", "error": null}')
    sys.stdout.flush()
    os.write(1, b"written straight to fd 1\n")
    return list(range(n))


@keel.task
def sleepy(seconds: float = 60) -> None:
    time.sleep(seconds)


@keel.task
def fail(message: str) -> None:
    raise ValueError(message)


@keel.task
def refuse() -> None:
    raise keel.NonRetryable("this cannot work")


@keel.task
def exit_hard(code: int = 3) -> None:
    sys.stderr.write("about to leave without a word\n")
    sys.stderr.flush()
    os._exit(code)


@keel.task
def crash() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(60)


def _write_pids(pid_file: str, grandchild: int) -> None:
    tmp = Path(f"{pid_file}.tmp")
    tmp.write_text(json.dumps({"child": os.getpid(), "grandchild": grandchild}))
    tmp.replace(pid_file)  # the test never reads half a file


@keel.task
def spawn_and_sleep(pid_file: str) -> None:
    grandchild = subprocess.Popen(["sleep", "60"])
    _write_pids(pid_file, grandchild.pid)
    time.sleep(60)


@keel.task
def spawn_and_return(pid_file: str) -> str:
    """Leaves a subprocess running (it inherits stderr) and answers at once."""
    grandchild = subprocess.Popen(["sleep", "60"])
    _write_pids(pid_file, grandchild.pid)
    return "done"


@keel.task
def whoami() -> dict[str, Any]:
    ctx = keel.context()
    return {
        "run_id": ctx.run_id,
        "workflow": ctx.workflow,
        "node": ctx.node,
        "attempt": ctx.attempt,
        "item": ctx.item,
        "idempotency_key": ctx.idempotency_key,
        "pid": os.getpid(),
    }
