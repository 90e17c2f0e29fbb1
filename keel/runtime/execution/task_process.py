"""The child side of ``isolation="process"``: run one attempt of a task in this process
and answer with its outcome (``keel.runtime.execution.isolation`` starts it and reads the answer).

Run as ``python -m keel.runtime.execution.task_process``. The protocol is JSON only, never pickle,
so the parent never executes anything the child sends:

    stdin   {"task": "pkg.mod:func", "args": {...},
             "context": {"run_id", "workflow", "node", "attempt", "item",
                         "traceparent" (the worker's span of the attempt, or null)},
             "retry": RetryPolicy.model_dump(mode="json") | null, "sys_path": [...]}
    stdout  {"started": true} and a newline (``STARTED``), as the task's body begins:
            the interpreter, keel and the task's module are loaded, its arguments fit
            (the parent's timeout counts from here; a failure before has no such line);
            then {"output": <JSON>,
                  "error": null | {"type", "message", "traceback", "retryable"},
                  "logs": {"lines": [[at, level, message], ...], "dropped": n}}
            ("logs", when the task logged through ``ctx.logger``: its lines,
            bounded as a worker bounds them, ``keel.runtime.execution.task_logs``)

Invariants:

- the response is the only thing written to the real stdout: before anything else runs,
  fd 1 and ``sys.stdout`` are pointed at stderr, so a ``print`` in the task (or a C
  library writing to fd 1) goes to the log instead of corrupting the answer;
- the process ends right after answering (``os._exit``), so a thread the task left
  running cannot hold the attempt open after its result is known.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

from opentelemetry import trace

from keel.runtime.execution.invoke import Invocation, TaskCatalog, make_context
from keel.runtime.execution.task_access import TaskAccess
from keel.runtime.execution.task_logs import collect
from keel.runtime.tracing.context import parsed
from keel.spec.policies import RetryPolicy

#: the line that tells the parent the task's body starts now
STARTED = b'{"started": true}\n'


def keep_stdout_for_response() -> TextIO:
    """Send everything written to fd 1 to stderr; return the real stdout for the answer.

    The duplicate is not inheritable (PEP 446), so subprocesses the task starts do not
    hold the response pipe open either.
    """
    sys.stdout.flush()
    response = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return response


def answer(request: dict[str, Any], started: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run the attempt ``request`` describes and return the response as JSON data;
    ``started()`` as the task's body begins."""
    # the parent's path first, so the task imports what the parent would have imported
    sys.path[:0] = [entry for entry in request["sys_path"] if entry not in sys.path]
    context = request["context"]
    ctx = make_context(
        context["run_id"], context["workflow"], context["node"], context["attempt"],
        context["item"], _span_of(context.get("traceparent")),
    )  # fmt: skip
    retry = RetryPolicy.model_validate(request["retry"]) if request["retry"] else None
    # the parent checked that the task may run here (keel.runtime.execution.task_access)
    catalog = TaskCatalog(TaskAccess(trusted=True))
    with collect((ctx.run_id, ctx.node, ctx.item, ctx.attempt)) as captured:
        outcome = Invocation(catalog, request["task"], request["args"], ctx, retry).run(started)
        logs = captured()
    error = None if outcome.error is None else dataclasses.asdict(outcome.error)
    response = {"output": outcome.output, "error": error}
    if logs.lines or logs.dropped:
        lines = [[line.at, line.level, line.message] for line in logs.lines]
        response["logs"] = {"lines": lines, "dropped": logs.dropped}
    return response


def _span_of(traceparent: str | None) -> trace.Span | None:
    """The worker's span of the attempt, made current here while the task runs: spans
    the task makes in this process (with an SDK it configures) are its children, and
    instrumented calls carry it on."""
    found = parsed(traceparent)
    return None if found is None else trace.NonRecordingSpan(found)


def _flush_spans() -> None:
    """Export what a task's own SDK holds before ``os._exit``, which skips ``atexit``."""
    flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if flush is not None:
        flush()


def encode(response: dict[str, Any]) -> str:
    """The response as JSON text; an error response if it somehow is not JSON."""
    try:
        return json.dumps(response, allow_nan=False)
    except (TypeError, ValueError) as exc:  # Invocation already checks results; be safe
        message = f"the task's result is not JSON: {exc}"
        error = {"type": "ResultNotJSON", "message": message, "traceback": "", "retryable": False}
        return json.dumps({"output": None, "error": error})


def main() -> None:
    response = keep_stdout_for_response()
    request = json.load(sys.stdin)

    def started() -> None:
        response.write(STARTED.decode())
        response.flush()

    text = encode(answer(request, started))
    response.write(text)
    response.close()
    _flush_spans()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
