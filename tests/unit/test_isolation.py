"""``isolation="process"``: one attempt in a child process, killed at its deadline, with
the result, errors and context crossing the process boundary as JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from keel.runtime.execution.context import StepContext
from keel.runtime.execution.invoke import Outcome, make_context
from keel.runtime.execution.isolation import run_in_process
from keel.spec.policies import RetryPolicy
from tests.unit import isolation_tasks  # noqa: F401  (loaded, as a worker loads its code: see task_access)

TASKS = "tests.unit.isolation_tasks"


def run(
    name: str,
    args: dict[str, Any] | None = None,
    *,
    ctx: StepContext | None = None,
    timeout: float | None = 30,
    retry: RetryPolicy | None = None,
) -> Outcome:
    return run_in_process(
        f"{TASKS}:{name}",
        args or {},
        ctx or make_context("run-1", "wf", "step", 1, None),
        timeout=timeout,
        retry=retry,
    )


def is_dead(pid: int) -> bool:
    """Gone, or a zombie: a killed process whose parent died too waits for init to reap
    it, and not every container's init does."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def wait_dead(pid: int) -> bool:
    """Whether ``pid`` dies soon (SIGKILL is delivered asynchronously)."""
    deadline = time.monotonic() + 10
    while not is_dead(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_result_comes_back_as_json_data() -> None:
    outcome = run("add", {"a": 2, "b": 3})
    assert outcome == Outcome(
        output={"sum": 5, "parts": [2, 3], "nested": {"ok": True, "none": None}}
    )


def test_printing_to_stdout_does_not_corrupt_the_answer() -> None:
    assert run("chatty", {"n": 3}) == Outcome(output=[0, 1, 2])


def test_task_runs_in_another_process_with_the_attempts_context() -> None:
    outcome = run("whoami", ctx=make_context("run-7", "billing", "charge", 2, 4))
    assert outcome.error is None
    assert outcome.output.pop("pid") != os.getpid()
    assert outcome.output == {
        "run_id": "run-7",
        "workflow": "billing",
        "node": "charge",
        "attempt": 2,
        "item": 4,
        "idempotency_key": "run-7:charge[4]:2",
    }


def test_exception_becomes_a_retryable_error_with_its_traceback() -> None:
    error = run("fail", {"message": "bad input"}).error
    assert error is not None
    assert (error.type, error.message, error.retryable) == ("ValueError", "bad input", True)
    assert "Traceback" in error.traceback
    assert "in fail" in error.traceback


def test_never_retry_on_is_respected() -> None:
    policy = RetryPolicy(max_attempts=3, never_retry_on=("ValueError",))
    error = run("fail", {"message": "bad input"}, retry=policy).error
    assert error is not None
    assert error.type == "ValueError"
    assert error.retryable is False


def test_non_retryable_is_respected() -> None:
    error = run("refuse", retry=RetryPolicy(max_attempts=3)).error
    assert error is not None
    assert error.type == "keel.errors.NonRetryable"
    assert error.retryable is False


def test_timeout_kills_the_process_and_its_subprocesses(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.json"
    # long enough for the child to start and write its pids; the task would sleep 60 s
    outcome = run("spawn_and_sleep", {"pid_file": str(pid_file)}, timeout=3)
    assert outcome.error is not None
    assert outcome.error.type == "TimeoutError"
    assert outcome.error.retryable is True
    assert pid_file.exists(), "the task did not start before the timeout"
    pids = json.loads(pid_file.read_text())
    assert f"(pid {pids['child']}) was killed" in outcome.error.message
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(pids["child"], 0)
    assert wait_dead(pids["grandchild"])


def test_timeout_respects_never_retry_on() -> None:
    policy = RetryPolicy(max_attempts=3, never_retry_on=("TimeoutError",))
    error = run("sleepy", timeout=0.5, retry=policy).error
    assert error is not None
    assert error.type == "TimeoutError"
    assert error.retryable is False


def test_a_subprocess_left_running_does_not_hold_the_attempt_open(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.json"
    try:
        assert run("spawn_and_return", {"pid_file": str(pid_file)}) == Outcome(output="done")
    finally:
        if pid_file.exists():
            os.kill(json.loads(pid_file.read_text())["grandchild"], signal.SIGKILL)


def test_exiting_without_an_answer_is_process_died() -> None:
    error = run("exit_hard", {"code": 3}).error
    assert error is not None
    assert error.type == "ProcessDied"
    assert "exited with code 3" in error.message
    assert "about to leave without a word" in error.message  # the end of its stderr
    assert error.retryable is True


def test_death_by_signal_is_process_died() -> None:
    error = run("crash").error
    assert error is not None
    assert error.type == "ProcessDied"
    assert "killed by SIGSEGV" in error.message


def test_task_module_is_found_on_the_parents_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "keel_isolation_probe.py").write_text("def hello():\n    return 'hi'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ctx = make_context("run-1", "wf", "step", 1, None)
    outcome = run_in_process("keel_isolation_probe:hello", {}, ctx, timeout=30, retry=None)
    assert outcome == Outcome(output="hi")


def test_missing_task_is_an_import_error() -> None:
    error = run("no_such_task").error
    assert error is not None
    assert error.type == "ImportError"
    assert error.retryable is False


def test_arguments_that_are_not_json_fail_without_starting_a_process() -> None:
    error = run("add", {"a": float("nan"), "b": 1}).error
    assert error is not None
    assert error.type == "ArgumentError"


# --- the timeout counts from the start of the task's body -----------------------------------

SLOW_START = "tests.unit.isolation_slow_start"


def test_start_up_does_not_count_against_the_timeout() -> None:
    # importing the task's module takes 2.5 s, the timeout is 1 s, the body is instant
    outcome = run_in_process(f"{SLOW_START}:quick", {}, make_context("run-1", "wf", "s", 1, None),
                             timeout=1.0, retry=None)  # fmt: skip
    assert outcome == Outcome(output="started late, finished on time")


def test_a_body_over_its_timeout_is_still_killed_after_a_slow_start(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    outcome = run_in_process(f"{SLOW_START}:overrun", {"pid_file": str(pid_file)},
                             make_context("run-1", "wf", "s", 1, None), timeout=1.0,
                             retry=None)  # fmt: skip
    assert outcome.error is not None
    assert outcome.error.type == "TimeoutError"
    assert outcome.error.message.startswith("the attempt took longer than 1.0 s")
    pid = int(pid_file.read_text())  # the body did start
    assert f"(pid {pid}) was killed" in outcome.error.message
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(pid, 0)


def test_a_child_that_never_starts_the_task_is_killed_at_the_start_up_bound() -> None:
    outcome = run_in_process(f"{SLOW_START}:quick", {}, make_context("run-1", "wf", "s", 1, None),
                             timeout=None, retry=None, startup_timeout=0.5)  # fmt: skip
    error = outcome.error
    assert error is not None
    assert error.type == "TimeoutError"
    assert error.retryable is True
    assert "had not started the task after 0.5 s" in error.message
    pid = int(error.message.split("(pid ")[1].split(")")[0])
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(pid, 0)


# --- a parent that exits leaves no child behind ---------------------------------------------

_EXITS_WHILE_RUNNING = """
import sys, time
from pathlib import Path
from keel.runtime.execution.executor import Executor
from keel.runtime.execution.invoke import Invocation, TaskCatalog, make_context

pid_file = Path(sys.argv[1])
invocation = Invocation(TaskCatalog(), "tests.unit.isolation_tasks:spawn_and_sleep",
                        {"pid_file": str(pid_file)}, make_context("r", "w", "n", 1, None),
                        None, "process")
Executor(threads=1).submit("attempt", invocation, None, lambda key, outcome: None)
deadline = time.monotonic() + 60
while not pid_file.exists() and time.monotonic() < deadline:
    time.sleep(0.02)
print("exiting")  # with the attempt still running in its child process
"""


def test_a_process_that_exits_kills_the_children_of_its_running_attempts(tmp_path: Path) -> None:
    # task threads do not hold a process that exits (a worker stopping after its grace,
    # keel run after its run ended); the child processes they wait on must not outlive it
    pid_file = tmp_path / "pids.json"
    done = subprocess.run(
        [sys.executable, "-c", _EXITS_WHILE_RUNNING, str(pid_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "exiting\n"
    pids = json.loads(pid_file.read_text())
    assert wait_dead(pids["child"])
    assert wait_dead(pids["grandchild"])
