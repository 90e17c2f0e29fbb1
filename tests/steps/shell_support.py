"""What the tests of the ``shell`` step share: a worker's folder with a ``keel.toml``, and
the step called as the worker calls it (real programs, real process groups)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keel.runtime.execution.context import StepContext
from keel.runtime.execution.invoke import Invocation, Outcome, TaskCatalog, make_context
from keel.steps import shell
from keel.steps.shell import shell_step

PY = sys.executable
#: a Python program that prints its arguments as a JSON list
PRINT_ARGS = "import json, sys; print(json.dumps(sys.argv[1:]))"
#: a Python program that prints its environment as a JSON object
PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"
NO_VALUES: dict[str, Any] = {"input": {}, "nodes": {}}


def allow(folder: Path, *programs: str, extra: str = "") -> None:
    """Write ``folder``'s keel.toml allowing ``programs``, and forget the config read."""
    listed = ", ".join(f'"{program}"' for program in programs)
    (folder / "keel.toml").write_text(f"[shell]\nallow = [{listed}]\n{extra}")
    shell._config.cache_clear()


def context() -> StepContext:
    return make_context("run-1", "wf", "s", 1, None)


def run_step(values: dict[str, Any] | None = None, /, **step: Any) -> dict[str, Any]:
    """The step's task called directly: what it returns, or what it raises."""
    return shell_step({"kind": "shell", "id": "s", **step}, values or NO_VALUES, context())


def attempt(values: dict[str, Any] | None = None, /, **step: Any) -> Outcome:
    """One attempt as the worker runs it (``Invocation``): its outcome redacted of the
    secrets it looked up, failures as recorded data."""
    args = {"step": {"kind": "shell", "id": "s", **step}, "values": values or NO_VALUES}
    return Invocation(TaskCatalog(), "keel.steps.shell:shell_step", args, context()).run()


def eventually(check: Callable[[], bool], what: str, deadline: float = 30.0) -> None:
    """Wait for ``check`` (generous: nothing here asserts on durations)."""
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, f"still not so after {deadline} s: {what}"
        time.sleep(0.02)
