"""Errors at 80 columns (``COLUMNS=80``, as when piped): a refusal longer than a line is
wrapped at spaces, its continuation indented, and still says everything it said."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e import test_run_cli
from tests.e2e.test_fork_cli import failed_trip, without_terminal
from tests.e2e.test_run_cli import Keel


@pytest.fixture
def keel(tmp_path: Path) -> Keel:
    found: Keel = test_run_cli.keel.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    found.env["COLUMNS"] = "80"
    return found


def fits(result: subprocess.CompletedProcess[str]) -> str:
    """The refusal's words, after checking that no line of it is wider than 80."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.splitlines()
    assert lines, "nothing was said"
    assert all(len(line) <= 80 for line in lines), result.stderr
    assert "Traceback" not in result.stderr
    return " ".join(result.stderr.split())


def test_long_refusals_fit_80_columns(keel: Keel) -> None:
    source = failed_trip(keel)
    version = keel.show(source)["spec_version"]

    said = fits(keel("diff", source[:8], f"version:{version[:12]}"))
    assert f"is run {source[:12]} (trip) and 'version:{version[:12]}' is version" in said
    assert said.endswith("keel diff compares two runs or two versions")

    said = fits(without_terminal(keel, "fork", source[:8], "--from", "book_car"))
    assert said.endswith("nothing was started: pass --yes to start the fork")

    said = fits(without_terminal(keel, "fork", source[:8], "--from", "book_boat", "--yes"))
    assert "has no node 'book_boat' (nodes: book_flight, book_hotel, book_car)" in said
