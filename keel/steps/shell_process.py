"""Run one program for a ``shell`` step: in a process group of its own, its output read
as it comes and kept up to a bound, killed with everything it started at the deadline.

Invariants:

- No shell: the program gets its arguments as given (``shell=False``).
- The program starts a new session (``start_new_session``), so it and every process it
  starts (unless one leaves the session itself) share a process group, which is what is
  signalled. When the program ends, whatever it left running in its group is killed:
  nothing a step started outlives the step. At the deadline the group gets ``SIGTERM``,
  then ``SIGKILL`` after ``grace`` seconds.
- The group is signalled only while its leader is not yet reaped (a zombie still holds
  its pid), so the signal cannot reach an unrelated group that reused the id. Where
  Linux's ``pidfd_open`` is missing the leader's exit is polled and this holds only for
  the leader's lifetime.
- stdout and stderr are read in one loop with ``select`` (no deadlock on a full pipe,
  however much is written), each kept up to ``limit`` bytes; the rest is read and
  dropped, and ``truncated`` says so. Reading stops ``_DRAIN`` seconds after the group
  was killed even if a process that left the group still holds a pipe.
- A group still running when the worker's process exits (the attempt was abandoned:
  its thread cannot be stopped) is killed by an ``atexit`` hook (``_LIVE``): the one
  process-wide registry here, because exit hooks are process-wide.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

#: seconds to keep reading a pipe after the whole group was killed
_DRAIN = 2.0
#: bytes read at once
_CHUNK = 65536
#: seconds between looks at the leader where no pidfd tells of its exit
_POLL = 0.05
#: the stages of a run: running, sent SIGTERM, sent SIGKILL, the program ended
_RUNNING, _TERMINATED, _KILLED, _ENDED = range(4)
#: marks the pidfd among the selector's files
_EXIT = object()


@dataclass(frozen=True, slots=True)
class Finished:
    """How the program ended and what it wrote."""

    #: the exit code, or minus the signal that killed it (as ``subprocess`` says)
    returncode: int
    stdout: bytes
    stderr: bytes
    stdout_cut: bool
    stderr_cut: bool
    #: the program overran its deadline and its group was killed
    timed_out: bool


class _Bounded:
    """A pipe's bytes, kept up to ``limit``; the rest counted, not kept."""

    def __init__(self, limit: int) -> None:
        self.limit, self.kept, self.cut = limit, bytearray(), False

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.kept)
        if len(chunk) > room:
            self.cut = True
        if room > 0:
            self.kept += chunk[:room]


#: process groups of running programs, killed if the worker exits first
_LIVE: set[int] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _kill_live_groups() -> None:
    with _LIVE_LOCK:
        groups = list(_LIVE)
    for group in groups:
        _signal_group(group, signal.SIGKILL)


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(group, signum)


def run_program(
    executable: Path,
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    stdin: bytes | None,
    limit: int,
    timeout: float | None,
    grace: float,
) -> Finished:
    """Run ``executable`` with ``argv`` (``argv[0]`` is the name it is called by) and wait
    for it, as the module says. ``OSError`` if it cannot be started."""
    with _LIVE_LOCK:  # held from the start: an exit now still finds the group
        proc = subprocess.Popen(  # an allowed program, an argument list, no shell
            list(argv),
            executable=str(executable),
            env=env,
            cwd=str(cwd),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
        group = proc.pid  # the leader of a new session leads its group
        _LIVE.add(group)
    try:
        return _wait(proc, group, stdin, limit, timeout, grace)
    finally:
        _signal_group(group, signal.SIGKILL)  # nothing it started outlives the step
        with _LIVE_LOCK:  # before the leader is reaped: its id may be reused after
            _LIVE.discard(group)
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()


def _wait(
    proc: subprocess.Popen[bytes],
    group: int,
    stdin: bytes | None,
    limit: int,
    timeout: float | None,
    grace: float,
) -> Finished:
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = _Bounded(limit), _Bounded(limit)
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ, out)
    selector.register(proc.stderr, selectors.EVENT_READ, err)
    pending = memoryview(stdin or b"")
    if proc.stdin is not None:
        os.set_blocking(proc.stdin.fileno(), False)
        if pending:
            selector.register(proc.stdin, selectors.EVENT_WRITE, None)
        else:
            proc.stdin.close()
    exit_fd = _exit_fd(proc.pid)
    if exit_fd is not None:
        selector.register(exit_fd, selectors.EVENT_READ, _EXIT)
    now = time.monotonic()
    #: the next moment something is due: the deadline, SIGKILL after SIGTERM, or the
    #: end of draining the pipes after the program ended
    due = None if timeout is None else now + timeout
    stage = _RUNNING
    timed_out = leader_done = False
    try:
        while True:
            if stage != _ENDED and (leader_done or (exit_fd is None and proc.poll() is not None)):
                _signal_group(group, signal.SIGKILL)  # what it left running
                stage, due = _ENDED, now + _DRAIN
                if exit_fd is not None:
                    selector.unregister(exit_fd)
            if stage == _ENDED and (_reading(selector) == 0 or (due is not None and now >= due)):
                break
            if due is not None and now >= due:
                if stage == _RUNNING:
                    timed_out = True
                    _signal_group(group, signal.SIGTERM)
                    stage, due = _TERMINATED, now + grace
                elif stage == _TERMINATED:
                    _signal_group(group, signal.SIGKILL)
                    stage, due = _KILLED, None
            wait = None if due is None else max(0.0, due - now)
            if exit_fd is None and stage != _ENDED:
                wait = _POLL if wait is None else min(wait, _POLL)
            for key, _ in selector.select(wait):
                if key.data is _EXIT:
                    leader_done = True
                elif key.data is None and proc.stdin is not None:
                    pending = _write_some(selector, proc.stdin, pending)
                else:
                    chunk = os.read(key.fd, _CHUNK)
                    if chunk:
                        key.data.add(chunk)
                    else:
                        selector.unregister(key.fileobj)
            now = time.monotonic()
    finally:
        selector.close()
        if exit_fd is not None:
            os.close(exit_fd)
    returncode = proc.wait()
    return Finished(returncode, bytes(out.kept), bytes(err.kept), out.cut, err.cut, timed_out)


def _exit_fd(pid: int) -> int | None:
    """A pidfd that becomes readable when ``pid`` exits (Linux), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _reading(selector: selectors.BaseSelector) -> int:
    """How many of the output pipes are still open."""
    return sum(1 for key in selector.get_map().values() if isinstance(key.data, _Bounded))


def _write_some(
    selector: selectors.BaseSelector, pipe: IO[bytes], pending: memoryview
) -> memoryview:
    """Write what the pipe takes now; close it when all is written or the program
    stopped reading."""
    try:
        written = os.write(pipe.fileno(), pending[:_CHUNK])
    except BlockingIOError:
        return pending
    except BrokenPipeError:
        written = len(pending)
    pending = pending[written:]
    if not pending:
        selector.unregister(pipe)
        pipe.close()
    return pending
