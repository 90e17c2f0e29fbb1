"""The ``shell`` built-in step: run a program the worker allows, with arguments given as
a list (never a shell string), and hand back its exit code and output.

What the program gets (``docs/steps/shell.md`` says it for users):

- arguments: each filled template item is one argument; an item that is wholly one
  expression giving a list adds each element; a value that is not text is written as
  JSON (``3``, ``true``, ``{"a": 1}``);
- environment: only ``PATH`` (``[shell] env.PATH``, else the worker's), ``HOME``,
  ``LANG`` and ``LC_ALL`` (the worker's, when set), then ``[shell] env``, then the node's
  ``env``. The worker's own environment (``KEEL_DATABASE_URL``, ``KEEL_SECRET_*``, cloud
  keys) is never passed on;
- working folder: ``cwd``, which must exist, or a new empty temporary folder removed
  afterwards; standard input: ``stdin`` as UTF-8, or nothing.

Failures: an exit code not in ``ok_exit_codes`` (or a signal) fails the attempt as
retryable (``ShellExitError``: the node's retry policy decides), with the end of stderr
in the message; an overrun is a ``TimeoutError`` (retryable as the policy says). What
another attempt would repeat fails without a retry (``NonRetryable``): a program not
allowed or not found, a missing ``cwd``, stdout that is not the JSON ``parse`` asked for.

The timeout: the program's group is sent ``SIGTERM`` a little before the attempt's
timeout and ``SIGKILL`` after a grace (``kill_times``), so the step ends, and says it
killed the program, before the worker's own timeout for the attempt fires (which could
not stop the program: a thread cannot be stopped). Secrets the templates read reach the
program; the worker redacts them from what the attempt records.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keel.authoring.tasks import task
from keel.errors import KeelError, NonRetryable
from keel.runtime.execution.context import StepContext
from keel.spec.step_nodes import ShellNode
from keel.steps.filling import filled, step_node, step_timeout
from keel.steps.shell_config import ShellConfig, load_shell_config
from keel.steps.shell_process import Finished, run_program
from keel.steps.shell_programs import ProgramNotAllowed, check_allowed, found_program

#: the worker's variables a program gets (when set), besides PATH
PASSED_ON = ("HOME", "LANG", "LC_ALL")
#: the longest wait between SIGTERM and SIGKILL, seconds
GRACE = 2.0
#: lines of stderr a failure's message quotes, and their most characters
_TAIL_LINES, _TAIL_CHARS = 10, 2000


class ShellCommandError(NonRetryable):
    """The command cannot be run as given (no program name, a missing ``cwd``, a file
    that cannot be started); another attempt would fail the same way."""


class ShellExitError(KeelError):
    """The program ended with an exit code not in ``ok_exit_codes``, or was killed by a
    signal. Retryable: the node's retry policy decides (``never_retry_on`` may name it)."""


class ShellOutputError(NonRetryable):
    """stdout is not the JSON that ``parse: json`` asked for."""


@functools.cache
def _config() -> ShellConfig:
    """Read once per process: a worker's config does not change under it."""
    return load_shell_config()


def forget_shell_config() -> None:
    """Have the next step read the ``[shell]`` settings again (a test's run does)."""
    _config.cache_clear()


@task
def shell_step(step: dict[str, Any], values: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Run the ``shell`` node ``step`` with the run's ``values`` (see the module)."""
    if os.name != "posix":
        raise ShellCommandError("the shell step runs on POSIX systems only (Linux, macOS)")
    node = step_node(ShellNode, step)
    fields = filled(node, values)
    argv = arguments(node.command, fields["command"])
    env = environment(_config(), fields.get("env", {}))
    stdin = None if fields.get("stdin") is None else argument_text(fields["stdin"]).encode()
    with _workdir(fields.get("cwd")) as cwd:
        executable = found_program(argv[0], env["PATH"], cwd)
        _check_allowed(argv[0], executable)
        finished = _run(node, executable, argv, env, cwd, stdin, step_timeout(step))
    return _output(node, argv[0], finished)


def arguments(templates: tuple[Any, ...], values: list[Any]) -> list[str]:
    """The program's arguments: ``values`` (the filled ``templates``) as text, an item
    that was wholly one expression and gave a list spread into its elements. The first
    item, the program, is text, never spread (an empty list would make the next
    argument the program)."""
    program = values[0]
    if not isinstance(program, str) or not program.strip():
        given = json.dumps(program, ensure_ascii=False)
        given = given if len(given) <= 80 else given[:77] + "..."
        raise ShellCommandError(f"the command's first item names the program; it gave {given}")
    argv = [program]
    for template, value in zip(templates[1:], values[1:], strict=True):
        if isinstance(template, str) and isinstance(value, list):
            argv.extend(argument_text(item) for item in value)
        else:
            argv.append(argument_text(value))
    for index, arg in enumerate(argv):
        if "\0" in arg:
            raise ShellCommandError(f"argument {index} of the command holds a NUL character")
    return argv


def environment(config: ShellConfig, node_env: dict[str, Any]) -> dict[str, str]:
    """The program's whole environment (see the module); nothing else of the worker's."""
    env = {"PATH": config.base_path()}
    env.update({name: os.environ[name] for name in PASSED_ON if os.environ.get(name)})
    env.update(config.env)
    for name, value in node_env.items():
        text = argument_text(value)
        if "\0" in text:
            raise ShellCommandError(f"env.{name} holds a NUL character")
        env[name] = text
    if not env.get("PATH"):
        env["PATH"] = config.base_path()
    return env


def kill_times(timeout: float | None) -> tuple[float | None, float]:
    """When to send the program's group ``SIGTERM`` (seconds after it starts; None: never)
    and how long to wait before ``SIGKILL``: both inside ``timeout``, a tenth of it kept
    (at most a second) for the step to end before the worker's own timeout fires."""
    if timeout is None:
        return None, GRACE
    grace = min(GRACE, timeout / 10)
    return max(0.0, timeout - grace - min(1.0, timeout / 10)), grace


def _check_allowed(program: str, executable: Path) -> None:
    """``check_allowed``, reading the config again before refusing: the operator may
    have just allowed the program (then ``keel retry`` works without a restart)."""
    try:
        check_allowed(program, executable, _config())
    except ProgramNotAllowed:
        _config.cache_clear()
        check_allowed(program, executable, _config())


def _run(
    node: ShellNode,
    executable: Path,
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    stdin: bytes | None,
    timeout: float | None,
) -> Finished:
    term_after, grace = kill_times(timeout)
    try:
        finished = run_program(executable, argv, env=env, cwd=cwd, stdin=stdin,
                               limit=node.max_output_bytes, timeout=term_after,
                               grace=grace)  # fmt: skip
    except OSError as exc:
        raise ShellCommandError(
            f"program {argv[0]!r} ({executable}) cannot be started: {exc.strerror or exc}"
        ) from None
    if finished.timed_out:
        raise TimeoutError(
            f"program {argv[0]!r} ran past the step's timeout of {timeout} s and was killed "
            f"with everything it started (SIGTERM, then SIGKILL after {grace:g} s)"
            f"{_stderr_tail(finished)}"
        )
    return finished


def _output(node: ShellNode, program: str, finished: Finished) -> dict[str, Any]:
    code = finished.returncode
    stdout = finished.stdout.decode("utf-8", errors="replace")
    stderr = finished.stderr.decode("utf-8", errors="replace")
    if code not in node.ok_exit_codes:
        if code < 0:
            how = f"was killed by signal {_signal_name(-code)}"
        else:
            ok = ", ".join(str(c) for c in node.ok_exit_codes)
            how = f"exited with code {code} (ok: {ok})"
        raise ShellExitError(f"program {program!r} {how}{_stderr_tail(finished)}")
    parsed: Any = stdout
    if node.parse == "json":
        parsed = _json(stdout, finished.stdout_cut, node.max_output_bytes)
    return {
        "exit_code": code,
        "stdout": parsed,
        "stderr": stderr,
        "truncated": {"stdout": finished.stdout_cut, "stderr": finished.stderr_cut},
    }


def _json(stdout: str, cut: bool, limit: int) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        return json.loads(stdout, parse_constant=refuse)
    except ValueError as exc:
        start = stdout.strip()[:200]
        more = f"; stdout was cut at max_output_bytes={limit} bytes: raise it" if cut else ""
        raise ShellOutputError(
            f"parse: json, but stdout is not JSON ({exc}){more}; it starts: {start!r}"
        ) from None


def _stderr_tail(finished: Finished) -> str:
    text = finished.stderr.decode("utf-8", errors="replace").rstrip()
    if not text:
        return "; its stderr is empty"
    tail = "\n".join(text.splitlines()[-_TAIL_LINES:])[-_TAIL_CHARS:]
    return f"; the end of its stderr:\n{tail}"


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return str(number)


@contextlib.contextmanager
def _workdir(value: Any) -> Iterator[Path]:
    """The folder ``cwd`` names, which must exist; without one, a new empty folder,
    removed with what the program left in it."""
    if value is None:
        with tempfile.TemporaryDirectory(prefix="keel-shell-", ignore_cleanup_errors=True) as new:
            yield Path(new)
        return
    folder = Path(argument_text(value)).expanduser()
    if not folder.is_dir():
        raise ShellCommandError(f"cwd {str(folder)!r} is not an existing folder")
    yield folder.absolute()


def argument_text(value: Any) -> str:
    """A filled value as an argument: text as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
