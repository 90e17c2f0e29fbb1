"""Which programs a ``shell`` step may start: the worker's ``[shell] allow`` (by file,
symlinks resolved; a bare name found on the operator's ``PATH``, never the node's), and
the ``[shell]`` table read strictly. Real files and real programs in the test's folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.errors import NonRetryable
from keel.steps import shell
from keel.steps.shell_config import ShellConfigError, load_shell_config
from keel.steps.shell_programs import ProgramNotAllowed, ProgramNotFound
from tests.steps.shell_support import allow, attempt, run_step


@pytest.fixture(autouse=True)
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "worker"
    folder.mkdir()
    monkeypatch.chdir(folder)
    shell._config.cache_clear()
    yield folder
    shell._config.cache_clear()


def tool(folder: Path, name: str, says: str) -> Path:
    """An executable script ``folder/name`` that prints ``says``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho {says}\n")
    path.chmod(0o755)
    return path


def test_a_program_not_allowed_fails_without_a_retry_naming_it_and_the_setting(
    worker: Path,
) -> None:
    allow(worker, "echo")
    outcome = attempt(command=["cat", "/etc/hostname"])
    assert outcome.error is not None
    assert not outcome.error.retryable
    assert outcome.error.type == "keel.steps.shell_programs.ProgramNotAllowed"
    assert "program 'cat'" in outcome.error.message
    assert f"[shell] allow in keel.toml ({worker / 'keel.toml'})" in outcome.error.message
    assert "it allows 'echo'" in outcome.error.message
    assert run_step(command=["echo", "hi"])["stdout"] == "hi\n"


def test_without_a_shell_table_nothing_runs() -> None:
    with pytest.raises(ProgramNotAllowed, match="it allows nothing"):
        run_step(command=["echo", "hi"])


def test_an_absolute_entry_allows_that_file_by_any_name_that_finds_it(
    worker: Path, tmp_path: Path
) -> None:
    real = tool(tmp_path / "bin", "report", "real")
    allow(worker, str(real))
    # found on the node's PATH: the same file
    env = {"PATH": str(real.parent)}
    assert run_step(command=["report"], env=env)["stdout"] == "real\n"
    # a symlink to it, by its path
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "alias").symlink_to(real)
    assert run_step(command=[str(tmp_path / "links" / "alias")])["stdout"] == "real\n"
    # the same name, another file: refused
    tool(tmp_path / "evil", "report", "evil")
    with pytest.raises(ProgramNotAllowed, match="program 'report'"):
        run_step(command=["report"], env={"PATH": str(tmp_path / "evil")})


def test_a_bare_entry_is_the_file_found_on_the_operators_path_not_the_nodes(
    worker: Path, tmp_path: Path
) -> None:
    tool(tmp_path / "bin", "report", "real")
    tool(tmp_path / "evil", "report", "evil")
    allow(worker, "report", extra=f'env = {{PATH = "{tmp_path / "bin"}"}}\n')
    assert run_step(command=["report"])["stdout"] == "real\n"
    # a node that points PATH elsewhere does not make "report" mean its own file
    with pytest.raises(ProgramNotAllowed, match=str(tmp_path / "evil" / "report")):
        run_step(command=["report"], env={"PATH": str(tmp_path / "evil")})
    with pytest.raises(ProgramNotAllowed):
        run_step(command=[str(tmp_path / "evil" / "report")])


def test_a_program_that_is_not_found_says_where_it_was_looked_for(worker: Path) -> None:
    allow(worker, "echo")
    with pytest.raises(ProgramNotFound, match="not found on the step's PATH") as caught:
        run_step(command=["no-such-program-here"])
    assert isinstance(caught.value, NonRetryable)


def test_a_program_allowed_after_a_refusal_runs_without_a_restart(worker: Path) -> None:
    allow(worker, "true")
    shell._config()  # read and cached, as a worker would
    (worker / "keel.toml").write_text('[shell]\nallow = ["echo"]\n')
    assert run_step(command=["echo", "now"])["stdout"] == "now\n"


@pytest.mark.parametrize(
    ("table", "says"),
    [
        (
            'allow = ["echo"]\nallwo = ["cat"]\n',
            "shell: unknown key 'allwo' (known keys: allow, env)",
        ),
        ('allow = "echo"\n', "shell.allow must be a list"),
        ('allow = ["bin/tool"]\n', "shell.allow has 'bin/tool', a relative path"),
        ('allow = [""]\n', "shell.allow entries must be program names or absolute paths"),
        ('env = {"1X" = "v"}\n', "shell.env has '1X', which is not a variable name"),
        ("env = {X = 3}\n", "shell.env.X must be a string"),
        ('env = "X=1"\n', "shell.env must be a table of strings"),
    ],
)
def test_a_wrong_shell_table_names_the_file_and_the_key(
    worker: Path, table: str, says: str
) -> None:
    (worker / "keel.toml").write_text(f"[shell]\n{table}")
    with pytest.raises(ShellConfigError) as caught:
        load_shell_config()
    assert f"keel.toml ({worker / 'keel.toml'})" in str(caught.value)
    assert says in str(caught.value)
    # and the step fails with it, without a retry
    outcome = attempt(command=["echo", "hi"])
    assert outcome.error is not None
    assert not outcome.error.retryable
    assert says in outcome.error.message


def test_the_shell_table_may_live_in_pyproject(worker: Path) -> None:
    (worker / "pyproject.toml").write_text('[tool.keel.shell]\nallow = ["echo"]\n')
    assert load_shell_config().allow == ("echo",)
    assert run_step(command=["echo", "from pyproject"])["stdout"] == "from pyproject\n"
