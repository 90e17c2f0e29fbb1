"""Tasks for the tests of proven-fast tasks run on the calling thread
(``tests.unit.test_executor_inline``), resolved by import path as a worker does.

Each says which thread it ran on. The executor under test times runs with ``timer``,
which moves only when a task asks for a slow run: which runs count as fast never
depends on how busy the machine is.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import Any

import keel

TASKS = "tests.unit.inline_tasks"

#: seconds as ``timer`` tells them
ticks = 0.0
#: set by a test once its ``on_done`` got the timeout outcome
timed_out = threading.Event()
#: a variable the calling thread sets, to see whether a task run there sees it
marker: ContextVar[str] = ContextVar("marker")


def timer() -> float:
    return ticks


def reset() -> None:
    global ticks, timed_out
    ticks = 0.0
    timed_out = threading.Event()


@keel.task
def where(
    after: Any = None,
    slow: bool = False,
    fail: bool = False,
    interrupt: bool = False,
    wait_for_timeout: bool = False,
) -> int:
    """The id of the thread it ran on; ``slow``: the run takes a second (by ``timer``)."""
    global ticks
    if slow:
        ticks += 1.0
    if fail:
        raise ValueError("failed on purpose")
    if interrupt:
        raise KeyboardInterrupt
    if wait_for_timeout and not timed_out.wait(timeout=30):
        raise RuntimeError("the timeout never came")
    return threading.get_ident()


@keel.task
def sees_context() -> dict[str, Any]:
    """What a task sees of the context variables, and sets one (on its own context)."""
    seen = marker.get("unset")
    marker.set("set by the task")
    return {"marker": seen, "node": keel.context().node, "thread": threading.get_ident()}
