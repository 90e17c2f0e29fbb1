"""The database as ``keel run`` and ``keel resume`` meet it, in real processes: a fresh
PostgreSQL schema is brought up to date by them as by a worker, the embedded database
is created private, and resuming a run that has ended is an error that says so."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import fresh_url, open_postgres

ROOT = Path(__file__).resolve().parents[2]
FLOWS = Path(__file__).resolve().with_name("workerflows.py")
#: seconds a single command may take before the test fails (generous: machines are busy)
COMMAND_TIMEOUT = 60


def keel(*args: str, cwd: Path = ROOT, db: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "KEEL_DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    if db is not None:
        env["KEEL_DATABASE_URL"] = db
    return subprocess.run(
        [sys.executable, "-m", "keel", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=COMMAND_TIMEOUT, check=False,
    )  # fmt: skip


@pytest.fixture
def new_schema() -> Iterator[str]:
    """A URL naming a schema nothing has created yet (dropped afterwards)."""
    open_postgres().close()  # skips the test when there is no server
    address = fresh_url()
    yield address
    open_postgres(address).drop_schema()


# --- a fresh PostgreSQL schema ----------------------------------------------------------


def test_run_applies_the_migrations_of_a_fresh_postgres_schema(new_schema: str) -> None:
    ran = keel("run", f"{FLOWS}:hello", "-i", "name=ann", "--quiet", db=new_schema)

    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"result": "hello ann"}


def test_resume_applies_the_migrations_of_a_fresh_postgres_schema(new_schema: str) -> None:
    resumed = keel("resume", "--yes", db=new_schema)

    assert resumed.returncode == 0, resumed.stderr
    assert "no unfinished runs" in resumed.stderr


# --- resuming what has ended --------------------------------------------------------------


def test_resuming_a_run_that_has_ended_fails_saying_so(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'keel.db'}"
    assert keel("run", f"{FLOWS}:hello", "-i", "name=bo", "--quiet", db=db).returncode == 0
    (run,) = json.loads(keel("runs", "--json", db=db).stdout)
    events = keel("history", run["id"], "--json", db=db).stdout

    resumed = keel("resume", run["id"][:8], "--yes", db=db)

    assert resumed.returncode == 1
    assert f"run {run['id'][:8]} has already ended (succeeded)" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert keel("history", run["id"], "--json", db=db).stdout == events  # nothing recorded


def test_skip_that_ends_a_failed_run_prints_its_output_and_exits_0(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'keel.db'}"
    assert keel("run", f"{FLOWS}:refused", "-i", "name=di", "--quiet", db=db).returncode == 1
    (run,) = json.loads(keel("runs", "--json", db=db).stdout)

    # the failed node was the last: setting it by hand ends the run at once
    skipped = keel("skip", run["id"], "refuse", "--output", '"fine"', "--yes", db=db)

    assert skipped.returncode == 0, skipped.stderr
    assert json.loads(skipped.stdout) == {"result": "fine"}
    assert "succeeded" in skipped.stderr


# --- the embedded database ----------------------------------------------------------------


def test_run_creates_the_embedded_database_for_its_user_only(tmp_path: Path) -> None:
    ran = keel("run", f"{FLOWS}:hello", "-i", "name=cy", "--quiet", cwd=tmp_path)

    assert ran.returncode == 0, ran.stderr
    folder = tmp_path / ".keel"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("keel.db", "keel.db-wal", "keel.db-shm"):
        if (folder / name).exists():  # -wal and -shm go when the last connection closes
            assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name


# --- a database that is not there ---------------------------------------------------------

NO_DATABASE = "no keel database at "


@pytest.mark.parametrize(
    "command",
    [
        ["runs"], ["show", "abc"], ["history", "abc"], ["verify", "--all"], ["approvals"],
        ["approve", "abc", "review"], ["signal", "abc", "go"], ["pause", "abc"],
        ["failed"], ["retry", "abc"], ["circuits"], ["cancel", "abc"], ["resume", "--yes"],
    ],
)  # fmt: skip
def test_a_command_that_starts_no_work_creates_no_database(
    tmp_path: Path, command: list[str]
) -> None:
    """A mistyped URL must not look like an empty store (and leave a stray file)."""
    shown = keel(*command, cwd=tmp_path, db="sqlite:///nested/folder/keel.db")

    assert shown.returncode == 1, shown.stdout
    assert shown.stderr.startswith(f"{NO_DATABASE}nested/folder/keel.db: check --db")
    assert "a database is created by `keel run`" in shown.stderr
    assert "Traceback" not in shown.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_bare_word_as_the_url_is_refused_naming_the_accepted_forms(tmp_path: Path) -> None:
    listed = keel("runs", cwd=tmp_path, db="garbage")

    assert listed.returncode == 1
    assert listed.stderr.strip() == (
        "no keel database at garbage: check --db / KEEL_DATABASE_URL "
        "(sqlite:///PATH or postgresql://USER@HOST/DB; a database is created by `keel run`)"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_absolute_path_that_is_not_there_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "x.db"

    listed = keel("runs", "--db", f"sqlite:///{missing}", cwd=tmp_path)

    assert listed.returncode == 1
    assert listed.stderr.startswith(f"{NO_DATABASE}{missing}:")
    assert list(tmp_path.iterdir()) == []


def test_a_typo_in_the_url_is_not_shown_as_a_missing_run(tmp_path: Path) -> None:
    ran = keel("run", f"{FLOWS}:hello", "-i", "name=ann", "--quiet", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    (run,) = json.loads(keel("runs", "--json", cwd=tmp_path).stdout)

    shown = keel("show", run["id"][:8], "--db", "sqlite:///.keel/kee1.db", cwd=tmp_path)

    assert shown.returncode == 1
    assert shown.stderr.startswith(f"{NO_DATABASE}.keel/kee1.db: check --db")
    assert sorted(p.name for p in (tmp_path / ".keel").iterdir() if "kee1" in p.name) == []


def test_the_commands_that_start_work_create_the_database(tmp_path: Path) -> None:
    upgraded = keel("db", "upgrade", cwd=tmp_path, db="sqlite:///a/keel.db")
    ran = keel("run", f"{FLOWS}:hello", "-i", "name=ann", "--quiet", cwd=tmp_path,
               db="sqlite:///b/keel.db")  # fmt: skip

    assert upgraded.returncode == 0, upgraded.stderr
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "a" / "keel.db").is_file()
    assert (tmp_path / "b" / "keel.db").is_file()
