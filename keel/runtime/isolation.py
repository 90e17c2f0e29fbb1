"""``isolation="process"``: run one attempt of a sync task in a child Python process, so
that its timeout can actually end it (a thread cannot be killed; a process can).

The child is ``python -m keel.runtime.task_process``; the two speak JSON only (the
protocol is described there), never pickle.

Invariants:

- at the deadline the child's whole process group gets SIGKILL: the child starts its own
  session, so subprocesses the task started die with it;
- the child is always reaped before ``run_in_process`` returns or raises;
- a failure comes back as an ``Outcome`` error, never as an exception: the task's own
  exception, ``TimeoutError`` at the deadline, ``ProcessDied`` when the child ended
  without a valid answer (a signal, ``os._exit``, a crash in native code, out of memory).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from typing import IO, Any

from keel.engine.events import ErrorInfo
from keel.runtime.context import StepContext
from keel.runtime.invoke import Outcome, may_retry
from keel.spec.policies import RetryPolicy

log = logging.getLogger("keel.isolation")

#: how much of the child's stderr a ``ProcessDied`` error quotes
STDERR_TAIL = 2_000


def run_in_process(
    task: str,
    args: dict[str, Any],
    ctx: StepContext,
    *,
    timeout: float | None,
    retry: RetryPolicy | None,
) -> Outcome:
    """Run one attempt of ``task`` in a child process; kill it once ``timeout`` passes."""
    try:
        request = _request(task, args, ctx, retry)
    except (TypeError, ValueError) as exc:
        message = f"the arguments of '{task}' cannot be sent to its process as JSON: {exc}"
        return Outcome(error=ErrorInfo(type="ArgumentError", message=message, retryable=False))
    # stderr goes to a file, not a pipe: a subprocess the task leaves running inherits
    # stderr, and a pipe would keep the attempt open until that subprocess exits
    with (
        tempfile.TemporaryFile() as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "keel.runtime.task_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        ) as child,
    ):
        try:
            out, _ = child.communicate(request, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(child)
            child.communicate()  # reap it and close the pipes
            message = (
                f"the attempt took longer than {timeout} s; "
                f"its process (pid {child.pid}) was killed"
            )
            retryable = may_retry(retry, {"TimeoutError"})
            outcome = Outcome(
                error=ErrorInfo(type="TimeoutError", message=message, retryable=retryable)
            )
        except BaseException:  # interrupted: never leave the child running
            _kill(child)
            raise
        else:
            outcome = _parse(out) or _died(child, stderr)
        _log_stderr(stderr, task, child.pid)
    return outcome


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
    if not isinstance(data, dict) or set(data) != {"output", "error"}:
        return None
    error = data["error"]
    if error is None:
        return Outcome(output=data["output"])
    if not (
        isinstance(error, dict)
        and isinstance(error.get("type"), str)
        and isinstance(error.get("message"), str)
        and isinstance(error.get("traceback"), str)
        and isinstance(error.get("retryable"), bool)
    ):
        return None
    return Outcome(
        error=ErrorInfo(error["type"], error["message"], error["traceback"], error["retryable"])
    )


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
    return stderr.read().decode(errors="replace")[-STDERR_TAIL:].strip()


def _log_stderr(stderr: IO[bytes], task: str, pid: int) -> None:
    if stderr.seek(0, os.SEEK_END) and log.isEnabledFor(logging.DEBUG):
        stderr.seek(0)
        text = stderr.read().decode(errors="replace")
        log.debug("stderr of task %s (pid %d):\n%s", task, pid, text.rstrip())
