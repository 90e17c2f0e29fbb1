"""``isolation="process"``: run one attempt of a sync task in a child Python process, so
that its timeout can actually end it (a thread cannot be killed; a process can).

The child is ``python -m keel.runtime.execution.task_process``; the two speak JSON only (the
protocol is described there), never pickle.

The timeout counts from when the task's body starts, not from when the process does:
starting Python, keel and the task's module (seconds on a loaded machine, more for a
heavy library) is not the attempt's time. The child says when the body starts; until
then a separate, generous bound (``STARTUP_TIMEOUT``) applies, so a child that never gets
there is killed too.

Invariants:

- at a deadline the child's whole process group gets SIGKILL: the child starts its own
  session, so subprocesses the task started die with it;
- the child is always reaped before ``run_in_process`` returns or raises;
- the child does not outlive this process: children still running when it exits (a
  worker stopping with attempts it gave back) are killed then, as at a deadline;
- a failure comes back as an ``Outcome`` error, never as an exception: the task's own
  exception, ``TimeoutError`` at a deadline, ``ProcessDied`` when the child ended
  without a valid answer (a signal, ``os._exit``, a crash in native code, out of memory).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Any

from keel.engine.events import ErrorInfo
from keel.runtime.execution.context import StepContext
from keel.runtime.execution.invoke import Outcome, may_retry
from keel.runtime.execution.task_logs import Captured, replay
from keel.runtime.execution.task_process import STARTED
from keel.runtime.secrets import known_secrets, redact_text
from keel.spec.policies import RetryPolicy
from keel.store.task_logs import LogLine

log = logging.getLogger("keel.isolation")

#: how much of the child's stderr a ``ProcessDied`` error quotes
STDERR_TAIL = 2_000
#: seconds a child may take to start the task's body (Python, keel, the task's module)
STARTUP_TIMEOUT = 120.0
#: seconds the parent waits at most in one go before it looks at its deadlines again
_LONGEST_WAIT = 3600.0

#: children running now (the threads waiting on them are daemons: see ``kill_children``)
_children: set[subprocess.Popen[bytes]] = set()
_children_lock = threading.Lock()


@atexit.register
def kill_children() -> None:
    """Kill the children of attempts still running, and what they started. The threads
    that wait on them do not keep this process from exiting, so this runs at exit;
    call it before ``os._exit``, which skips that."""
    with _children_lock:
        children = list(_children)
    for child in children:
        if child.returncode is None:  # not reaped: its pid still names its group
            _kill(child)


def run_in_process(
    task: str,
    args: dict[str, Any],
    ctx: StepContext,
    *,
    timeout: float | None,
    retry: RetryPolicy | None,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> Outcome:
    """Run one attempt of ``task`` in a child process; kill it once ``timeout`` passes
    after the task's body started, or ``startup_timeout`` passes before it did."""
    try:
        request = _request(task, args, ctx, retry)
    except (TypeError, ValueError) as exc:
        message = f"the arguments of '{task}' cannot be sent to its process as JSON: {exc}"
        return Outcome(error=ErrorInfo(type="ArgumentError", message=message, retryable=False))
    # the request is read from a file, so that sending it never blocks on a child that
    # is slow to start; stderr goes to a file, not a pipe: a subprocess the task leaves
    # running inherits stderr, and a pipe would keep the attempt open until it exits
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stderr:
        stdin.write(request)
        stdin.seek(0)
        with subprocess.Popen(
            [sys.executable, "-m", "keel.runtime.execution.task_process"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        ) as child:
            assert child.stdout is not None
            with _children_lock:
                _children.add(child)
            try:
                try:
                    out, late = _answer(child.stdout, timeout, startup_timeout)
                except BaseException:  # interrupted: never leave the child running
                    _kill(child)
                    raise
                if late is not None:
                    _kill(child)
                child.wait()
            finally:
                with _children_lock:
                    _children.discard(child)
            if late is None:
                outcome = _parse(out) or _died(child, stderr)
                if outcome.logs is not None:  # the worker's log shows them too
                    replay((ctx.run_id, ctx.node, ctx.item, ctx.attempt), outcome.logs)
            else:
                outcome = _timed_out(child.pid, late, timeout, startup_timeout, retry)
            _log_stderr(stderr, task, child.pid)
    return outcome


def _answer(stdout: IO[bytes], timeout: float | None, startup: float) -> tuple[bytes, str | None]:
    """Read the child's answer, to the end of its stdout, and whether a deadline passed
    first (``"start-up"`` or ``"body"``: the child is still running then).

    ``STARTED`` at the head of the stream says the task's body starts: the start-up
    bound ends there and the timeout begins."""
    fd = stdout.fileno()
    data = bytearray()
    started = False
    deadline: float | None = time.monotonic() + startup
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            if not started and data.startswith(STARTED):
                started = True
                del data[: len(STARTED)]
                deadline = None if timeout is None else time.monotonic() + timeout
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return bytes(data), "body" if started else "start-up"
            if selector.select(_LONGEST_WAIT if left is None else min(left, _LONGEST_WAIT)):
                chunk = os.read(fd, 65_536)
                if not chunk:
                    return bytes(data), None
                data += chunk


def _timed_out(
    pid: int, late: str, timeout: float | None, startup: float, retry: RetryPolicy | None
) -> Outcome:
    if late == "body":
        message = f"the attempt took longer than {timeout} s; its process (pid {pid}) was killed"
    else:
        message = (
            f"the task's process (pid {pid}) had not started the task after {startup:g} s "
            "(starting Python and importing the task's module); it was killed"
        )
    retryable = may_retry(retry, {"TimeoutError"})
    return Outcome(error=ErrorInfo(type="TimeoutError", message=message, retryable=retryable))


def _request(task: str, args: dict[str, Any], ctx: StepContext, retry: RetryPolicy | None) -> bytes:
    request = {
        "task": task,
        "args": args,
        "context": {
            "run_id": ctx.run_id,
            "workflow": ctx.workflow,
            "node": ctx.node,
            "attempt": ctx.attempt,
            "item": ctx.item,
            # the attempt's span, continued by the child (``ctx.traceparent`` there)
            "traceparent": ctx.traceparent,
        },
        "retry": None if retry is None else retry.model_dump(mode="json"),
        # the child imports the task as this process would, whatever it added to its path
        "sys_path": sys.path,
    }
    return json.dumps(request, allow_nan=False).encode()


def _kill(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's process group (the child is unreaped, so its pid still names
    that group), and the child itself in case it left the group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.kill()


def _parse(out: bytes) -> Outcome | None:
    """The outcome the child answered, or None when ``out`` is not a valid response."""
    try:
        data = json.loads(out)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) - {"logs"} != {"output", "error"}:
        return None
    error, logs = data["error"], _captured(data.get("logs"))
    if error is None:
        return Outcome(output=data["output"], logs=logs)
    if not (
        isinstance(error, dict)
        and isinstance(error.get("type"), str)
        and isinstance(error.get("message"), str)
        and isinstance(error.get("traceback"), str)
        and isinstance(error.get("retryable"), bool)
    ):
        return None
    return Outcome(
        error=ErrorInfo(error["type"], error["message"], error["traceback"], error["retryable"]),
        logs=logs,
    )


def _captured(doc: Any) -> Captured | None:
    """The lines the child's task logged; None when it sent none or not in this shape
    (the outcome stands without them): {"lines": [[at, level, message]...], "dropped"}."""
    if not isinstance(doc, dict) or not isinstance(doc.get("lines"), list):
        return None
    dropped = doc.get("dropped")
    if isinstance(dropped, bool) or not isinstance(dropped, int) or dropped < 0:
        return None
    lines: list[LogLine] = []
    for entry in doc["lines"]:
        if not (
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], int | float)
            and isinstance(entry[1], str)
            and isinstance(entry[2], str)
        ):
            return None
        lines.append(LogLine(float(entry[0]), entry[1], entry[2]))
    return Captured(tuple(lines), dropped)


def _died(child: subprocess.Popen[bytes], stderr: IO[bytes]) -> Outcome:
    """The error for a child that ended without a valid answer.

    Retryable: the cause is usually the machine (memory, a signal from outside) rather
    than the task's logic, and the task never got to say otherwise.
    """
    code = child.returncode
    if code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
        if code == -signal.SIGKILL:
            how += " (from outside this worker: often the system running out of memory)"
    else:
        how = f"exited with code {code}"
    message = f"the task's process (pid {child.pid}) {how} without answering"
    tail = _tail(stderr)
    message += f"; the end of its stderr:\n{tail}" if tail else "; its stderr is empty"
    return Outcome(error=ErrorInfo(type="ProcessDied", message=message, retryable=True))


def _tail(stderr: IO[bytes]) -> str:
    size = stderr.seek(0, os.SEEK_END)
    # characters can take up to 4 bytes in UTF-8
    stderr.seek(max(0, size - 4 * STDERR_TAIL))
    text = stderr.read().decode(errors="replace")
    return redact_text(text, known_secrets())[-STDERR_TAIL:].strip()


def _log_stderr(stderr: IO[bytes], task: str, pid: int) -> None:
    if stderr.seek(0, os.SEEK_END) and log.isEnabledFor(logging.DEBUG):
        stderr.seek(0)
        text = redact_text(stderr.read().decode(errors="replace"), known_secrets())
        log.debug("stderr of task %s (pid %d):\n%s", task, pid, text.rstrip())
