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
