"""The ``shell`` step against real programs: arguments passed literally, the environment
it gets and the one it does not, cwd, stdin, exit codes, parsing, bounded output, the
timeout that kills the whole process group, and secrets redacted from what is recorded.

Programs are this Python (``PY``) and ``sh``, allowed by a ``keel.toml`` in the test's
worker folder. Nothing asserts on durations: a process's end is checked by its pid.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.errors import NonRetryable
from keel.spec.step_nodes import ShellNode
from keel.steps import shell, shell_process
from keel.steps.shell import ShellCommandError, ShellExitError, ShellOutputError, kill_times
from tests.processes import process_gone
from tests.steps.shell_support import (
    PRINT_ARGS,
    PRINT_ENV,
    PY,
    allow,
    attempt,
    eventually,
    run_step,
)


@pytest.fixture(autouse=True)
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The worker's folder (the current one), allowing this Python and ``sh``."""
    folder = tmp_path / "worker"
    folder.mkdir()
    monkeypatch.chdir(folder)
    allow(folder, PY, "sh")
    yield folder
    shell._config.cache_clear()


def args_of(result: dict[str, object]) -> list[str]:
    assert result["exit_code"] == 0
    stdout = result["stdout"]
    assert isinstance(stdout, str)
    parsed: list[str] = json.loads(stdout)
    return parsed


# --- arguments ---------------------------------------------------------------------------


def test_arguments_reach_the_program_literally_and_no_shell_reads_them(tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    hostile = [
        "two words",
        "it's",
        '"quoted"',
        "$(touch " + str(marker) + ")",
        "`touch " + str(marker) + "`",
        "; touch " + str(marker),
        "| touch " + str(marker),
        "$HOME",
        "*",
    ]
    values = {"input": {"evil": "; touch " + str(marker)}, "nodes": {}}
    result = run_step(values, command=[PY, "-c", PRINT_ARGS, *hostile, "${{ input.evil }}"])
    assert args_of(result) == [*hostile, "; touch " + str(marker)]
    assert not marker.exists()


def test_an_item_that_is_one_expression_giving_a_list_adds_each_element() -> None:
    values = {
        "input": {"files": ["a b.txt", 7, 2.5, True, None, {"k": [1]}], "n": 3, "none": []},
        "nodes": {},
    }
    command = [PY, "-c", PRINT_ARGS, "--", "${{ input.files }}", "${{ input.n }}",
               "n=${{ input.n }}", "${{ input.none }}", "all=${{ input.files }}"]  # fmt: skip
    assert args_of(run_step(values, command=command)) == [
        "--", "a b.txt", "7", "2.5", "true", "null", '{"k": [1]}', "3", "n=3",
        'all=["a b.txt", 7, 2.5, true, null, {"k": [1]}]',
    ]  # fmt: skip


def test_an_empty_program_name_is_refused_when_written_and_when_filled() -> None:
    with pytest.raises(ValueError, match="first item names the program: it is empty"):
        ShellNode(id="s", command=(" ",))
    for empty in ("", [], ["sh", "-c"]):
        values = {"input": {"program": empty}, "nodes": {}}
        with pytest.raises(ShellCommandError, match="first item names the program; it gave"):
            run_step(values, command=["${{ input.program }}", "x"])


def test_a_file_that_cannot_be_started_or_a_nul_fails_clearly(worker: Path) -> None:
    script = worker / "not-a-program"
    script.write_text("no shebang, no binary\n")
    script.chmod(0o755)
    allow(worker, str(script), PY)
    with pytest.raises(ShellCommandError, match=r"cannot be started: Exec format error"):
        run_step(command=[str(script)])
    values = {"input": {"arg": "a\u0000b"}, "nodes": {}}
    with pytest.raises(ShellCommandError, match="argument 3 of the command holds a NUL"):
        run_step(values, command=[PY, "-c", "pass", "${{ input.arg }}"])
    with pytest.raises(ShellCommandError, match=r"env\.X holds a NUL"):
        run_step(values, command=[PY, "-c", "pass"], env={"X": "${{ input.arg }}"})


# --- environment, cwd, stdin ------------------------------------------------------------


def test_the_program_gets_its_env_and_none_of_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_DATABASE_URL", "postgresql://worker:pw@db/keel")
    monkeypatch.setenv("WORKER_ONLY_TOKEN", "not-for-programs")
    monkeypatch.setenv("LANG", "C.UTF-8")
    values = {"input": {"region": "eu", "n": 4}, "nodes": {}}
    env = {"REGION": "${{ input.region }}", "COUNT": "${{ input.n }}", "PLAIN": "as written"}
    result = run_step(values, command=[PY, "-c", PRINT_ENV], env=env)
    seen = json.loads(result["stdout"])
    assert {key: seen[key] for key in env} == {"REGION": "eu", "COUNT": "4", "PLAIN": "as written"}
    assert seen["PATH"] == os.environ["PATH"]
    assert seen["LANG"] == "C.UTF-8"
    assert set(seen) <= {"PATH", "HOME", "LANG", "LC_ALL", *env}
    assert "KEEL_DATABASE_URL" not in seen
    assert "WORKER_ONLY_TOKEN" not in seen


def test_shell_env_of_keel_toml_is_given_and_the_node_may_override_it(worker: Path) -> None:
    allow(worker, PY, extra='env = {TEAM = "ops", PATH = "/usr/bin:/bin"}\n')
    result = run_step(command=[PY, "-c", PRINT_ENV], env={"TEAM": "billing"})
    seen = json.loads(result["stdout"])
    assert seen["PATH"] == "/usr/bin:/bin"
    assert seen["TEAM"] == "billing"
    assert json.loads(run_step(command=[PY, "-c", PRINT_ENV])["stdout"])["TEAM"] == "ops"


def test_cwd_is_the_folder_given_or_a_fresh_one_removed_afterwards(tmp_path: Path) -> None:
    code = "import json, os; print(json.dumps([os.getcwd(), os.listdir('.')]))"
    given = tmp_path / "here"
    given.mkdir()
    (given / "file.txt").write_text("x")
    values = {"input": {"dir": str(given)}, "nodes": {}}
    where, listed = json.loads(
        run_step(values, command=[PY, "-c", code], cwd="${{ input.dir }}")["stdout"]
    )
    assert (Path(where), listed) == (given.resolve(), ["file.txt"])
    where, listed = json.loads(run_step(command=[PY, "-c", code])["stdout"])
    assert listed == []
    assert Path(where).name.startswith("keel-shell-")
    assert not Path(where).exists()


def test_a_cwd_that_does_not_exist_fails_without_a_retry(tmp_path: Path) -> None:
    with pytest.raises(ShellCommandError, match="is not an existing folder") as caught:
        run_step(command=[PY, "-c", "pass"], cwd=str(tmp_path / "missing"))
    assert isinstance(caught.value, NonRetryable)


def test_stdin_is_written_to_the_program_however_large() -> None:
    code = "import sys; data = sys.stdin.read(); print(len(data), data[:5].upper())"
    result = run_step(command=[PY, "-c", code], stdin="hello" + "x" * 5_000_000)
    assert result["stdout"] == "5000005 HELLO\n"
    # a program that never reads its input still ends, and the step with it
    ignored = run_step(command=[PY, "-c", "print('done')"], stdin="y" * 5_000_000)
    assert ignored["stdout"] == "done\n"
    values = {"input": {"doc": {"id": 7}}, "nodes": {}}
    piped = run_step(
        values, command=[PY, "-c", "import sys; print(sys.stdin.read())"], stdin="${{ input.doc }}"
    )
    assert piped["stdout"] == '{"id": 7}\n'


# --- exit codes and output ---------------------------------------------------------------


def test_the_output_holds_the_exit_code_and_both_streams() -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    assert run_step(command=[PY, "-c", code]) == {
        "exit_code": 0,
        "stdout": "out\n",
        "stderr": "err\n",
        "truncated": {"stdout": False, "stderr": False},
    }


def test_an_exit_code_not_ok_fails_retryably_with_the_end_of_stderr() -> None:
    code = (
        "import sys; print('\\n'.join(f'line {i}' for i in range(30)), file=sys.stderr); "
        "sys.exit(3)"
    )
    outcome = attempt(command=[PY, "-c", code])
    assert outcome.error is not None
    assert outcome.error.type == "keel.steps.shell.ShellExitError"
    assert outcome.error.retryable
    assert "exited with code 3 (ok: 0)" in outcome.error.message
    assert "line 29" in outcome.error.message
    assert "line 5\n" not in outcome.error.message  # only the last lines
    with pytest.raises(ShellExitError):
        run_step(command=[PY, "-c", code])
    assert run_step(command=[PY, "-c", code], ok_exit_codes=[0, 3])["exit_code"] == 3


def test_a_program_killed_by_a_signal_says_which() -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    with pytest.raises(ShellExitError, match=r"killed by signal SIGTERM \(15\)"):
        run_step(command=[PY, "-c", code])


def test_parse_json_gives_the_value_and_a_bad_document_fails_without_a_retry() -> None:
    good = run_step(command=[PY, "-c", 'print(\'{"total": 3, "ok": [true]}\')'], parse="json")
    assert good["stdout"] == {"total": 3, "ok": [True]}
    outcome = attempt(command=[PY, "-c", "print('total: 3, not json')"], parse="json")
    assert outcome.error is not None
    assert not outcome.error.retryable
    assert outcome.error.type == "keel.steps.shell.ShellOutputError"
    assert "'total: 3, not json'" in outcome.error.message
    with pytest.raises(ShellOutputError, match="NaN is not JSON"):
        run_step(command=[PY, "-c", "print('NaN')"], parse="json")


def test_a_flood_of_output_is_read_to_the_end_kept_to_the_bound_and_said_cut() -> None:
    code = (
        "import sys\n"
        "for _ in range(10):\n"
        "    sys.stdout.write('o' * 1_000_000); sys.stderr.write('e' * 1_000_000)\n"
        "sys.stdout.flush(); sys.stderr.write('THE END')\n"
    )
    result = run_step(command=[PY, "-c", code], max_output_bytes=1000)
    assert result["exit_code"] == 0
    assert result["stdout"] == "o" * 1000
    assert result["stderr"] == "e" * 1000
    assert result["truncated"] == {"stdout": True, "stderr": True}
    with pytest.raises(ShellOutputError, match="cut at max_output_bytes=1000"):
        run_step(command=[PY, "-c", "print('[' + '1,' * 900 + '1]')"], parse="json",
                 max_output_bytes=1000)  # fmt: skip


# --- the timeout -------------------------------------------------------------------------


def test_the_timeout_kills_the_program_and_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    # the shell and its child ignore SIGTERM: only the SIGKILL that follows ends them
    script = 'trap "" TERM; sleep 300 & echo $! > "$1"; wait; wait'
    outcome = attempt(command=["sh", "-c", script, "sh", str(pid_file)], timeout=2.0)
    assert outcome.error is not None
    assert outcome.error.type == "TimeoutError"
    assert outcome.error.retryable
    assert "was killed with everything it started" in outcome.error.message
    grandchild = int(pid_file.read_text())
    eventually(lambda: process_gone(grandchild), f"the grandchild {grandchild} is gone")


def test_what_a_program_leaves_running_is_killed_when_it_ends() -> None:
    script = "sleep 300 > /dev/null 2>&1 & echo $!"
    result = run_step(command=["sh", "-c", script])
    left = int(result["stdout"])
    eventually(lambda: process_gone(left), f"the background sleep {left} is gone")


def test_the_kill_comes_before_the_attempts_own_timeout() -> None:
    assert kill_times(None) == (None, shell.GRACE)
    for timeout in (0.05, 1.0, 30.0, 3600.0):
        term, grace = kill_times(timeout)
        assert term is not None
        assert 0 <= term < term + grace < timeout


# --- secrets -----------------------------------------------------------------------------


def test_a_secret_reaches_the_program_and_is_redacted_from_the_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = "s3cr3t-token-value"
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", value)
    code = (
        "import hashlib, os, sys\n"
        "token = os.environ['TOKEN']\n"
        "assert token == 'Bearer ' + sys.argv[1], 'argument and variable differ'\n"
        "print(hashlib.sha256(token.encode()).hexdigest())\n"
        "print('echo', token)\n"
        "print('stderr', token, file=sys.stderr)\n"
        "print(sorted(k for k in os.environ if k.startswith('KEEL')))\n"
    )
    outcome = attempt(
        command=[PY, "-c", code, "${{ secrets.API_TOKEN }}"],
        env={"TOKEN": "Bearer ${{ secrets.API_TOKEN }}"},
    )
    assert outcome.error is None, outcome.error
    digest, echoed, keel_vars = outcome.output["stdout"].splitlines()
    assert digest == hashlib.sha256(f"Bearer {value}".encode()).hexdigest()
    assert echoed == "echo Bearer [secret API_TOKEN]"
    assert keel_vars == "[]"  # KEEL_SECRET_API_TOKEN itself is not passed on
    assert outcome.output["stderr"] == "stderr Bearer [secret API_TOKEN]\n"
    assert value not in json.dumps(outcome.output)


def test_a_secret_in_a_failure_message_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_SECRET_DB_PASSWORD", "hunter2-long")
    code = "import sys; print('login failed for', sys.argv[1], file=sys.stderr); sys.exit(1)"
    outcome = attempt(command=[PY, "-c", code, "${{ secrets.DB_PASSWORD }}"])
    assert outcome.error is not None
    assert "login failed for [secret DB_PASSWORD]" in outcome.error.message
    assert "hunter2-long" not in outcome.error.message + outcome.error.traceback


def test_without_a_pidfd_the_programs_end_is_polled_to_the_same_effect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as on macOS, which has no pidfd_open: the leader's exit is looked at every 50 ms
    monkeypatch.setattr(shell_process, "_exit_fd", lambda pid: None)
    code = "import sys; sys.stdout.write('o' * 3_000_000); print('err', file=sys.stderr)"
    result = run_step(command=[PY, "-c", code], max_output_bytes=10, stdin="x")
    assert (result["stdout"], result["stderr"]) == ("o" * 10, "err\n")
    pid_file = tmp_path / "grandchild.pid"
    script = 'trap "" TERM; sleep 300 & echo $! > "$1"; wait; wait'
    with pytest.raises(TimeoutError, match="was killed"):
        run_step(command=["sh", "-c", script, "sh", str(pid_file)], timeout=2.0)
    grandchild = int(pid_file.read_text())
    eventually(lambda: process_gone(grandchild), f"the grandchild {grandchild} is gone")
