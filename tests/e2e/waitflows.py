"""Workflows that wait, for the end-to-end tests of approvals, timers, signals, pausing
and child runs (``tests/e2e/test_waiting_cli.py``).

The tests run them in ``python -m keel`` subprocesses as ``tests/e2e/waitflows.py:NAME``.
Tasks that must be counted append a line to a file the test names (``log``), so a test
can tell how many times each one really ran, across processes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel

import keel


def _note(log: str, line: str) -> None:
    """Append one line to ``log`` (one ``write`` of a short line: never torn)."""
    with Path(log).open("a", encoding="utf-8") as out:
        out.write(f"{line}\n")


@keel.task
def prepare(log: str, amount: int) -> int:
    _note(log, f"prepare {os.getpid()}")
    return amount * 2


@keel.task
def finish(log: str, doubled: int, review: dict[str, object]) -> dict[str, object]:
    _note(log, f"finish {os.getpid()}")
    return {"doubled": doubled, "review": review}


class Verdict(BaseModel):
    """What the approver fills in."""

    reason: str
    score: int = 0


# --- 1. a task, an approval with a form, a task ------------------------------------------------


@keel.workflow
def reviewed(log: str, amount: int) -> dict[str, object]:
    """``prepare`` runs once, a person approves (filling in ``Verdict``), ``finish`` reports."""
    doubled = prepare(log, amount)
    verdict = keel.approval(
        "Review the amount",
        id="review",
        description="amount ${{ input.amount }} doubles to ${{ nodes.prepare.output }}",
        assignees=["ann", "bob"],
        form=Verdict,
    )
    return finish(log, doubled, verdict)


# --- 2. an approval, then a signal -------------------------------------------------------------


@keel.task
def combine(approved: dict[str, object], signalled: dict[str, object]) -> dict[str, object]:
    return {"approved": approved, "signalled": signalled}


@keel.workflow
def gate_then_signal() -> dict[str, object]:
    """An approval, then a node waiting for signal ``go`` (which may be sent earlier)."""
    approved = keel.approval("First gate", id="gate")
    go = keel.signal("go", id="go", after=[approved])
    return combine(approved, go)


# --- 3. a task, a timer, a task ----------------------------------------------------------------


@keel.task
def before_timer(log: str) -> str:
    _note(log, "before")
    return "before"


@keel.task
def after_timer(log: str, fired: str) -> dict[str, str]:
    _note(log, "after")
    return {"fired": fired}


@keel.workflow
def timed(log: str) -> dict[str, str]:
    """``before_timer``, three seconds' wait, ``after_timer``."""
    first = before_timer(log)
    fired = keel.timer("3s", id="pause_3s", after=[first])
    return after_timer(log, fired)


# --- 5. a task that waits for a file, then another ----------------------------------------------


@keel.task
def wait_for_file(folder: str) -> str:
    Path(folder, "started").touch()
    release = Path(folder, "release")
    deadline = time.monotonic() + 60  # a safety net: the test creates the file
    while not release.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("nobody created the release file within 60 s")
        time.sleep(0.02)
    return "released"


@keel.task
def after_file(status: str) -> str:
    return f"then {status}"


@keel.workflow
def file_gated(folder: str) -> str:
    return after_file(wait_for_file(folder))


# --- 6. a parent run whose child waits at an approval -------------------------------------------


@keel.task
def child_work(name: str) -> str:
    return f"hello {name}"


@keel.workflow
def child_flow(name: str) -> dict[str, object]:
    """The child: one task, then an approval."""
    greeting = child_work(name)
    signoff = keel.approval("Child sign-off", id="signoff", after=[greeting])
    return {"greeting": greeting, "signoff": signoff}


@keel.task
def wrap(child: dict[str, object]) -> dict[str, object]:
    return {"from_child": child}


@keel.workflow
def parent_flow(name: str) -> dict[str, object]:
    """The parent: the child run as a step, then a task reading its output."""
    # id= is one of the node keywords a workflow called as a step takes; the type of
    # Workflow.__call__ does not know them yet
    return wrap(child_flow(name, id="child"))  # type: ignore[call-arg]
