"""Storage faults under the real CLI: the disk fills up, the database file is read-only,
another process holds the write lock for long. Each test runs ``python -m keel`` in
subprocesses against a real fault and checks that the command exits non-zero with one
line on stderr saying what happened to which file (and what to do), prints no
traceback, and that what was recorded before the fault is intact (``keel verify``); a
wait that ends (space freed, lock released) lets the work go on where it stopped.

The faults: a small tmpfs mounted for the test (needs root; skipped, saying why, where
mounting is not allowed), the file made immutable with ``chattr +i`` (root ignores
permission bits), and a lock held by a process that keeps ``BEGIN IMMEDIATE`` open.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOWS = Path(__file__).resolve().with_name("faultflows.py")
#: seconds a single command may take before the test fails (generous: machines are busy)
COMMAND_TIMEOUT = 90
#: holds the write lock of the database named on its command line until stdin closes
HOLD_LOCK = (
    "import sqlite3, sys\n"
    "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "conn.execute('BEGIN IMMEDIATE')\n"
    "print('locked', flush=True)\n"
    "sys.stdin.read()\n"
    "conn.execute('COMMIT')\n"
)

pytestmark = pytest.mark.slow


def keel(db: Path, *args: str, options: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KEEL_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "keel", *args, "--db", f"sqlite:///{db}{options}"],
        env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False,
        cwd=db.parent, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def flow(name: str) -> str:
    return f"{FLOWS}:{name}"


def says_once(proc: subprocess.CompletedProcess[str], db: Path, what: str) -> str:
    """The command failed with one line about ``what`` naming ``db``, and no traceback."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if what in line]
    assert len(lines) == 1, proc.stderr
    assert str(db) in lines[0], lines[0]
    return lines[0]


def intact(db: Path, runs: int) -> None:
    """``keel verify --all`` finds ``runs`` runs, every one intact."""
    verified = keel(db, "verify", "--all")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.count("intact") == runs, verified.stdout


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB file system of its own, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system to fill up needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_run_resume_and_worker_with_one_line_and_loses_nothing(
    small_disk: Path,
) -> None:
    db = small_disk / "keel.db"
    first = keel(db, "run", flow("hello"), "-q")
    assert first.returncode == 0, first.stderr
    filler = small_disk / "filler"
    filler.write_bytes(bytes(3_600_000))  # about 300 KB left: the chain needs more

    full = "the disk is full"
    ran = keel(db, "run", flow("chain"), "-i", "size=8000", "-q")
    says_once(ran, db, full)
    assert "keel resume" in says_once(ran, db, full)
    says_once(keel(db, "resume", "-q", "--yes"), db, full)
    says_once(keel(db, "worker", str(FLOWS)), db, full)
    intact(db, runs=2)

    filler.unlink()
    resumed = keel(db, "resume", "-q", "--yes")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.split() == ["{", '"result":', "25", "}"]
    intact(db, runs=2)


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a file immutable here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_a_read_only_database_stops_run_with_one_line_and_can_still_be_read(
    tmp_path: Path,
) -> None:
    db = tmp_path / "keel.db"
    first = keel(db, "run", flow("hello"), "-q")
    assert first.returncode == 0, first.stderr

    with immutable(db):
        ran = keel(db, "run", flow("hello"), "-i", "name=bo", "-q")
        says_once(ran, db, "is read-only")
        listed = keel(db, "runs")
        assert listed.returncode == 0, listed.stderr
        intact(db, runs=1)


@contextmanager
def lock_held(db: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the database's write lock until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None
    assert holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.stdin.close()
        holder.wait(timeout=COMMAND_TIMEOUT)
        holder.stdout.close()


def test_a_lock_held_too_long_stops_run_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "keel.db"
    first = keel(db, "run", flow("hello"), "-q")
    assert first.returncode == 0, first.stderr

    with lock_held(db):
        ran = keel(db, "run", flow("hello"), "-i", "name=bo", "-q", options="?timeout=1")
    says_once(ran, db, "stayed locked by another process")
    intact(db, runs=1)


def test_a_run_waits_for_a_lock_held_a_while_saying_so_once(tmp_path: Path) -> None:
    db = tmp_path / "keel.db"
    first = keel(db, "run", flow("hello"), "-q")
    assert first.returncode == 0, first.stderr

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with lock_held(db):
        proc = subprocess.Popen(
            [sys.executable, "-m", "keel", "run", flow("hello"), "-i", "name=bo", "-q",
             "--db", f"sqlite:///{db}"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )  # fmt: skip
        assert proc.stderr is not None
        waiting = proc.stderr.readline()  # the run is blocked until the lock is let go
        assert "is locked by another process; waiting" in waiting, waiting
        assert str(db) in waiting
    out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
    assert proc.returncode == 0, err
    assert "hello bo" in out
    assert "Traceback" not in err
    assert "locked" not in err  # said once, above
    intact(db, runs=2)
