"""Malformed input is refused before anything is recorded, in real ``python -m keel``
processes: JSON nested 10,000 deep, files that are not UTF-8, integers past Python's
digit limit and lone surrogates, given to ``--input``/``-i``, ``--data`` and
``--output``; workflows that ``keel validate`` rejects given to ``keel run``; results
that miss their declared type; and a child run's result read by a task downstream.

Each refusal must be one line naming the option or file and the problem, exit non-zero,
print no traceback, and leave the database as it was (no run, no event).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.e2e import test_run_cli
from tests.e2e.test_run_cli import Keel, find

FLOWS = Path(__file__).resolve().with_name("flows_e2e.py")
CHECKED = Path(__file__).resolve().with_name("checkedflows.py")
WAITS = Path(__file__).resolve().with_name("waitflows.py")
DEEP = "[" * 10_000 + "]" * 10_000
HUGE = "9" * 5_000  # past the 4,300 digits Python turns into an int


@pytest.fixture
def keel(tmp_path: Path) -> Keel:
    return test_run_cli.keel.__wrapped__(tmp_path)  # type: ignore[attr-defined, no-any-return]


def counts(keel: Keel) -> tuple[int, int]:
    """(runs, events) in the database; (0, 0) if it was never created."""
    if not keel.db.exists():
        return 0, 0
    with closing(sqlite3.connect(keel.db)) as conn:
        try:
            runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
            events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        except sqlite3.OperationalError:  # no tables yet
            return 0, 0
    return int(runs), int(events)


def refused(keel: Keel, *args: str) -> str:
    """A command that must fail with one line and no traceback: that line."""
    result = keel(*args)
    assert result.returncode != 0, f"keel {' '.join(args)[:200]} succeeded:\n{result.stdout}"
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def test_malformed_run_input_is_refused_and_no_run_is_recorded(keel: Keel, tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text(DEEP)
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    (tmp_path / "huge.json").write_text('{"name": "a", "times": ' + HUGE + "}")
    greeting = f"{FLOWS}:greeting"

    cases = [
        (("--input", "@deep.json"), "--input (deep.json) holds lists or objects nested more"),
        (("--input", '{"name": ' + DEEP + "}"), "--input holds lists or objects nested more"),
        (("-i", "name=@deep.json"), "-i name (deep.json) holds lists or objects nested"),
        (("-i", "name=@latin1.txt"), "-i name: latin1.txt is not UTF-8 text (byte 3)"),
        (("--input", "@huge.json"), "--input (huge.json) holds an integer with more than 4300"),
        (("-i", "times=" + HUGE), "-i times holds an integer with more than 4300 digits"),
        (("--input", '{"name": "\\ud800"}'), "--input holds text with a lone surrogate"),
        (("-i", "name=caf\udce9"), "-i name holds text with a lone surrogate"),  # bytes argv
    ]
    for args, expected in cases:
        message = refused(keel, "run", greeting, *args)
        assert expected in message, message
    assert counts(keel) == (0, 0)


def test_malformed_decisions_signals_and_skips_are_refused_and_nothing_is_recorded(
    keel: Keel, tmp_path: Path
) -> None:
    (tmp_path / "deep.json").write_text(DEEP)
    from keel.runtime.client import Client
    from tests.e2e import waitflows

    with Client(f"sqlite:///{keel.db}") as client:
        waiting = client.start(waitflows.gate_then_signal)
    failed = keel.run(f"{FLOWS}:fix_and_retry", "-i", f"marker={tmp_path / 'never'}")
    assert failed.proc.returncode == 1
    before = counts(keel)

    cases = [
        (("approve", waiting, "gate", "--data", "@deep.json"), "--data (deep.json) holds lists"),
        (("approve", waiting, "gate", "--data", HUGE), "--data holds an integer with more"),
        (("signal", waiting, "go", "--data", DEEP), "--data holds lists or objects nested"),
        (("signal", waiting, "go", "--data", '"\\udfff"'), "--data holds text with a lone"),
        (
            ("skip", failed.run_id, "needs_marker", "--output", "notjson", "--yes"),
            "--output is not valid",
        ),
        (
            ("skip", failed.run_id, "needs_marker", "--output", DEEP, "--yes"),
            "--output holds lists",
        ),
        (
            ("skip", failed.run_id, "needs_marker", "--output", "5", "--yes"),
            "the output given for node 'needs_marker' does not fit the return type str of "
            "tests.e2e.flows_e2e:needs_marker: Input should be a valid string (got 5)",
        ),
    ]
    for args, expected in cases:
        message = refused(keel, *args)
        assert expected in message, message
    assert counts(keel) == before


def test_keel_run_refuses_what_keel_validate_refuses_and_records_nothing(
    keel: Keel, tmp_path: Path
) -> None:
    (tmp_path / "tasks_here.py").write_text(
        "import keel\n\n@keel.task\ndef count(text: str) -> int:\n    return 1\n"
    )
    flows = {
        "no_module.yaml": (
            "name: no_module\nnodes:\n  - id: a\n    task: nowhere_at_all:count\n",
            "cannot import module 'nowhere_at_all'",
        ),
        "no_function.yaml": (
            "name: no_function\nnodes:\n  - id: a\n    task: tasks_here:missing\n",
            "module 'tasks_here' has no attribute 'missing'",
        ),
        "wrong_type.yaml": (
            "name: wrong_type\nnodes:\n  - id: a\n    task: tasks_here:count\n"
            "    args: {text: 5}\n",
            "argument 'text' gives integer but the parameter expects string",
        ),
        "bad_schema.yaml": (
            "name: bad_schema\ninput_schema: {type: nonsense}\nnodes:\n"
            "  - id: a\n    task: tasks_here:count\n    args: {text: hi}\n",
            "bad_schema.yaml:2:22: input_schema.type: input_schema is not a valid JSON Schema",
        ),
    }
    for name, (text, expected) in flows.items():
        (tmp_path / name).write_text(text)
        validated = keel("validate", name)
        assert validated.returncode == 1
        assert expected in " ".join(validated.stderr.split()), validated.stderr
        ran = keel("run", name)
        assert ran.returncode == 1, ran.stdout
        assert "Traceback" not in ran.stderr
        assert expected in " ".join(ran.stderr.split()), ran.stderr
    assert counts(keel) == (0, 0)


def test_a_result_that_misses_its_return_type_fails_the_attempt_for_good(keel: Keel) -> None:
    ran = keel.run(f"{CHECKED}:bad_decision", "-i", "amount=5")

    assert ran.proc.returncode == 1
    assert "Traceback" not in ran.proc.stderr
    events = keel.history(ran.run_id)
    (failure,) = find(events, "node_failed", "decide_badly")  # once, despite retries=2
    error = failure["error"]
    assert error["type"] == "ResultTypeError"
    assert error["retryable"] is False
    assert error["message"] == (
        "task 'tests.e2e.checkedflows:decide_badly' returned what its return type Decision "
        "refuses: payout: Input should be a valid number, unable to parse string as a number "
        '(got "not-a-number")'
    )
    assert not find(events, "node_succeeded")
    assert events[-1]["kind"] == "run_failed"


def test_a_task_after_a_child_run_receives_the_child_s_result_as_its_type(keel: Keel) -> None:
    ran = keel.run(f"{CHECKED}:parent_pays", "-i", "amount=50")

    assert ran.output == {"result": {"type": "Decision", "payout": 25.0}}
    (parent,) = [run["id"] for run in keel.runs() if run["parent_run"] is None]
    events = keel.history(parent)
    assert find(events, "node_scheduled", "pay")[0]["args"] == {
        "decision": {"approved": True, "payout": 25.0}
    }


def test_validate_refuses_one_workflow_name_defined_in_two_files(
    keel: Keel, tmp_path: Path
) -> None:
    for name, node in (("one.yaml", "a"), ("two.yaml", "b")):
        (tmp_path / name).write_text(
            f"name: same\nnodes: [{{id: {node}, task: tests.e2e.flows_e2e:double, "
            "args: {x: 1}}]\n"
        )

    checked = keel("validate", "one.yaml", "two.yaml", "one.yaml")

    assert checked.returncode == 1
    assert checked.stdout.count("✓ one.yaml: workflow 'same' is valid") == 2  # the same one
    assert checked.stderr == (
        "✗ two.yaml: workflow 'same' is defined in one.yaml too; give each workflow its own name\n"
    )
