"""``keel resume`` as a user runs it (real processes, a SQLite file per test): which code
it loads (``keel.cli.resume_code``) and runs started with ``keel.Client.start`` from a
module that defines several workflows.

The runs are started by a small script, as a service would start them; nothing executes
them until ``keel resume``. Every module here writes a file when imported, so a test can
tell whether ``keel resume`` imported code it was not told to.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from keel.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60

FLOWS = """\
from pathlib import Path

import keel

Path("imported-flows").write_text("flows was imported")


@keel.task
def bump(x: int) -> int:
    return x + 1


@keel.task
def double(x: int) -> int:
    return 2 * x


@keel.workflow
def one(x: int) -> int:
    return bump(x)


@keel.workflow
def two(x: int) -> int:
    return double(x)
"""

START = """\
import sys

import keel
import flows

with keel.Client() as client:
    for name in sys.argv[1:]:
        workflow = getattr(flows, name)
        print(client.start(workflow, {"x": 5}))
"""


def keel(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": f"sqlite:///{cwd}/k.db"}
    return subprocess.run(
        [sys.executable, *args] if args[0].endswith(".py") else
        [sys.executable, "-m", "keel", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with ``flows.py`` (two workflows) and two runs, one of each, started with
    ``keel.Client.start`` (their recorded code is the module name ``flows``)."""
    (tmp_path / "flows.py").write_text(FLOWS)
    (tmp_path / "start.py").write_text(START)
    started = keel(tmp_path, "start.py", "one", "two")
    assert started.returncode == 0, started.stderr
    (tmp_path / "imported-flows").unlink()  # the starting script imported it
    return tmp_path


def statuses(folder: Path) -> dict[str, str | None]:
    store = SQLiteStore(folder / "k.db")
    try:
        return {r.workflow: r.status for r in store.list_runs()}
    finally:
        store.close()


def outputs(folder: Path) -> dict[str, object]:
    store = SQLiteStore(folder / "k.db")
    try:
        return {r.workflow: r.output for r in store.list_runs()}
    finally:
        store.close()


def test_a_bare_resume_with_yes_resumes_client_runs_of_a_module_with_several_workflows(
    project: Path,
) -> None:
    resumed = keel(project, "resume", "--yes", "--quiet")

    assert resumed.returncode == 0, resumed.stderr
    assert "pick one" not in resumed.stderr
    assert statuses(project) == {"one": "succeeded", "two": "succeeded"}
    assert outputs(project) == {"one": {"result": 6}, "two": {"result": 10}}


def test_resume_of_one_run_with_its_code_named(project: Path) -> None:
    store = SQLiteStore(project / "k.db")
    (run,) = [r for r in store.list_runs() if r.workflow == "two"]
    store.close()

    resumed = keel(project, "resume", run.id[:8], "--code", "flows", "--quiet")

    assert resumed.returncode == 0, resumed.stderr
    assert statuses(project) == {"one": "running", "two": "succeeded"}


def test_recorded_code_is_not_imported_unless_named_or_confirmed(project: Path) -> None:
    """Anyone who can start a run can write its recorded code: importing it runs it."""
    refused = keel(project, "resume", "--quiet")

    assert refused.returncode == 1
    lines = refused.stderr.splitlines()
    assert len([line for line in lines if "not resumed" in line]) == 2, refused.stderr
    assert "its code flows is recorded in the database" in refused.stderr
    assert "--code flows" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (project / "imported-flows").exists()
    assert statuses(project) == {"one": "running", "two": "running"}


def test_code_that_fails_to_load_leaves_the_other_runs_to_resume(project: Path) -> None:
    store = SQLiteStore(project / "k.db")
    (run,) = [r for r in store.list_runs() if r.workflow == "one"]
    store.close()
    # the run of 'one' recorded a module that is not here
    with closing(sqlite3.connect(project / "k.db")) as conn, conn:
        conn.execute("UPDATE runs SET origin = 'gone_module' WHERE id = ?", (run.id,))

    resumed = keel(project, "resume", "--yes", "--quiet")

    assert resumed.returncode == 1
    assert f"run {run.id[:8]} not resumed: its code gone_module could not be loaded" in (
        resumed.stderr
    )
    assert statuses(project) == {"one": "running", "two": "succeeded"}


@pytest.mark.parametrize("answer", ["y", "n"])
def test_in_a_terminal_resume_asks_before_loading_recorded_code(project: Path, answer: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": f"sqlite:///{project}/k.db"}
    terminal, child_side = os.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "keel", "resume", "--quiet"], cwd=project, env=env,
        stdin=child_side, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        os.close(child_side)
        os.write(terminal, f"{answer}\n".encode())
        _, err = proc.communicate(timeout=TIMEOUT)
    os.close(terminal)

    assert err.count("recorded its code as flows: load it?") == 1  # asked once per code
    if answer == "y":
        assert proc.returncode == 0, err
        assert statuses(project) == {"one": "succeeded", "two": "succeeded"}
    else:
        assert proc.returncode == 1
        assert "you did not confirm its code flows; to load it: keel resume" in err
        assert not (project / "imported-flows").exists()
        assert statuses(project) == {"one": "running", "two": "running"}
