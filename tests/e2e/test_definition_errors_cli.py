"""Mistakes in a Python file of workflows, as ``keel`` reports them in real processes:
a spec model given bad values (a trigger's cron, a retry policy) is one line per field
at the user's line, never pydantic's text or a traceback, for every command that
imports the file; and every invalid workflow of a file is reported, not only the first.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_cli import ROOT

BAD_TRIGGER = """\
import keel
from keel import ScheduleTrigger
@keel.task
def hello(name: str = "x") -> str:
    return name
@keel.workflow(triggers=[ScheduleTrigger(cron="61 * * * *", timezone="Europe/Nowhere")])
def wf() -> None:
    hello()
"""

SEVERAL_INVALID = """\
import keel

@keel.task
def hello(name: str = "x") -> str:
    return name

@keel.workflow(deadline="soon")
def first() -> None:
    hello.options(retries=-1)()

@keel.workflow
def fine() -> None:
    hello()

@keel.workflow(triggers=[{"kind": "schedule", "cron": "0 2 * * *", "catch_up": "never"}])
def second() -> None:
    hello(name=3)

@keel.workflow
def caller() -> None:
    first()
"""


def keel(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``keel ARGS`` in ``tmp_path``, on a database there."""
    env = {"PYTHONPATH": str(ROOT), "KEEL_DATABASE_URL": f"sqlite:///{tmp_path / 'keel.db'}",
           "PATH": "/usr/bin:/bin"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "keel", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def plain(result: subprocess.CompletedProcess[str]) -> str:
    """The error output of a command that failed as a user's mistake: no traceback and
    nothing of pydantic's own text."""
    assert result.returncode == 1, result.stdout + result.stderr
    for pydantic_text in ("Traceback", "validation error", "[type=", "errors.pydantic.dev",
                          "input_value"):  # fmt: skip
        assert pydantic_text not in result.stderr, result.stderr
    return result.stderr


@pytest.mark.parametrize("command", ["validate", "run", "deploy", "worker", "graph"])
def test_a_bad_trigger_is_one_line_per_field_at_the_users_line(
    tmp_path: Path, command: str
) -> None:
    path = tmp_path / "bad.py"
    path.write_text(BAD_TRIGGER)
    said = plain(keel(tmp_path, command, "bad.py"))
    lines = [line.strip() for line in said.splitlines()]
    assert f"{path}:6: ScheduleTrigger.cron: invalid cron expression '61 * * * *': Bad minute" in (
        lines
    ), said
    assert (f"{path}:6: ScheduleTrigger.timezone: unknown time zone 'Europe/Nowhere': use an "
            "IANA name such as 'Europe/Paris'") in lines, said  # fmt: skip


def test_every_spec_model_is_reported_so_even_nested_and_in_a_task(tmp_path: Path) -> None:
    (tmp_path / "retry.py").write_text(
        "import keel\n\n"
        "@keel.task(retry=keel.RetryPolicy(max_attempts=0))\n"
        "def hello() -> None: ...\n"
    )
    (tmp_path / "defaults.py").write_text(
        "import keel\n\n"
        "@keel.task\n"
        "def hello() -> None: ...\n\n"
        "@keel.workflow(defaults=keel.NodeDefaults(retry={'max_attempts': 0}, retires=2))\n"
        "def wf() -> None:\n"
        "    hello()\n"
    )
    said = plain(keel(tmp_path, "validate", "retry.py", "defaults.py"))
    assert f"{tmp_path / 'retry.py'}:3: RetryPolicy.max_attempts: Input should be" in said
    assert f"{tmp_path / 'defaults.py'}:6: NodeDefaults.retry.max_attempts: Input should" in said
    assert f"{tmp_path / 'defaults.py'}:6: NodeDefaults.retires: unknown field 'retires'" in said


def test_every_invalid_workflow_of_a_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "flows.py"
    path.write_text(SEVERAL_INVALID)
    said = plain(keel(tmp_path, "validate", "flows.py"))
    assert "workflow 'first' is invalid (2 problems):" in said
    assert f"{path}:9: node 'hello', retries: must be a whole number >= 0, got -1" in said
    assert "deadline: cannot read duration 'soon'" in said
    assert "workflow 'second' is invalid (2 problems):" in said
    assert "triggers.0.catch_up: Input should be 'skip', 'latest' or 'all'" in said
    assert "argument 'name' gives integer but the parameter expects string" in said
    # a workflow calling an invalid one is refused too, at the call
    assert "workflow 'caller' is invalid (1 problem):" in said
    assert f"{path}:21: calls workflow 'first', which is invalid" in said
    assert "'fine'" not in said
    # and so does a run of the valid one: the file is refused as a whole
    run = plain(keel(tmp_path, "run", "flows.py:fine"))
    assert "workflow 'first' is invalid" in run
    assert "workflow 'second' is invalid" in run


def test_an_error_of_the_users_code_says_where_it_arose(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("import keel\n\nlimits = {}\nLIMIT = limits['daily']\n")
    validated = plain(keel(tmp_path, "validate", "broken.py"))
    assert validated.strip() == f"✗ broken.py: importing it raised KeyError at {path}:4: 'daily'"
    ran = plain(keel(tmp_path, "run", "broken.py"))
    assert ran.strip() == f"importing broken.py raised KeyError at {path}:4: 'daily'"
