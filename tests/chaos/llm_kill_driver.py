"""Run a workflow of ``llmflow.py`` (or go on with its one run), SIGKILLing this process
at a chosen moment of a model request's life.

    python llm_kill_driver.py DB_URL WORKFLOW POINT [N]

``POINT`` is where the process dies, the ``N``th time (default 1) it gets there:

- ``before_sent``: before the ``sent`` record is written (``Store.send_call``);
- ``before_request``: the ``sent`` record is committed, the request has not left;
- ``after_answer``: the provider has answered (the stub counted the request), the answer
  is not recorded yet;
- ``before_record``: the answer (or an agent's tool result) is in, about to be
  recorded (``Store.end_call``);
- ``after_record``: the answer is committed (``Store.end_call``);
- ``after_outcome``: the model node's (map item's) success is committed;
- ``none``: no kill: run to the end.

Fault injection for tests only, done by wrapping keel's real functions here: the store's
methods (on its own class, so SQLite and PostgreSQL alike) and the OpenAI-compatible
provider's ``complete``; keel's code has no hook for it. The provider points at the stub
server of the test's process (``KEEL_LLM_LOCAL_BASE_URL``), which outlives this one.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keel.authoring.loading import load_workflow
from keel.engine.events import NodeSucceeded
from keel.llm.providers.openai_compatible import OpenAICompatible
from keel.runtime import Worker, open_store, start_run

#: loaded the way `keel run` loads it, so `keel resume` finds the same module names
FLOW = str(Path(__file__).with_name("llmflow.py"))
#: the id keel.llm.step gives the model node
NODE = "llm"


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _counter(times: int) -> Callable[[], bool]:
    """True on the ``times``th call."""
    seen = 0

    def count() -> bool:
        nonlocal seen
        seen += 1
        return seen == times

    return count


def _wrap(owner: type, name: str, *, before: bool, due: Callable[..., bool]) -> None:
    """Kill around ``owner.name`` (before or after the original runs) when ``due``,
    called with the method's arguments (and, after, its result), says so."""
    original = getattr(owner, name)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if before and due(*args):
            _die()
        result = original(self, *args, **kwargs)
        if not before and due(*args, result):
            _die()
        return result

    setattr(owner, name, wrapper)


def _node_succeeded(transitions: Any, committed: Any) -> bool:
    return any(
        isinstance(event, NodeSucceeded) and event.node == NODE
        for transition in transitions
        for event in transition.events
    )


def main() -> None:
    url, workflow, point = sys.argv[1], sys.argv[2], sys.argv[3]
    nth = _counter(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
    store = open_store(url)
    kind = type(store)
    if point == "before_sent":
        _wrap(kind, "send_call", before=True, due=lambda *_: nth())
    elif point == "before_request":
        _wrap(OpenAICompatible, "complete", before=True, due=lambda *_: nth())
    elif point == "after_answer":
        _wrap(OpenAICompatible, "complete", before=False, due=lambda *_: nth())
    elif point == "before_record":
        _wrap(kind, "end_call", before=True, due=lambda *_: nth())
    elif point == "after_record":
        _wrap(kind, "end_call", before=False, due=lambda *_: nth())
    elif point == "after_outcome":
        _wrap(kind, "commit", before=False,
              due=lambda ts, done: _node_succeeded(ts, done) and nth())  # fmt: skip
    elif point != "none":
        raise SystemExit(f"unknown kill point {point!r}")
    target = f"{FLOW}:{workflow}"
    runs = store.list_runs(limit=1)
    run_id = runs[0].id if runs else start_run(store, load_workflow(target).spec, {},
                                               origin=target).id  # fmt: skip
    worker = Worker(store)
    worker.reclaim()
    worker.run_until_finished([run_id])
    worker.close()
    store.close()


if __name__ == "__main__":
    main()
