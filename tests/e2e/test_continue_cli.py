"""Continuing a run that waits for a person, in real processes: ``keel resume`` says what
the run waits for (as ``keel run`` does) even when the wait opened before it started, and
a decision on a run that nothing executes says how to continue it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e import test_waiting_cli
from tests.e2e.test_run_cli import Keel, eventually
from tests.e2e.test_waiting_cli import DEADLINE, Start, flow, only_run, wait_for_approval

keel = test_waiting_cli.keel
start = test_waiting_cli.start


def waiting_run(keel: Keel, start: Start, tmp_path: Path) -> str:
    """A run of ``reviewed`` waiting for approval ``review``, whose ``keel run`` was killed."""
    first = start("run", flow("reviewed"), "-i", f"log={tmp_path / 'tasks.log'}", "-i", "amount=2")
    run_id = only_run(keel)
    wait_for_approval(keel, run_id, "review")
    first.kill()
    return run_id


def test_resume_says_what_an_open_wait_waits_for(keel: Keel, start: Start, tmp_path: Path) -> None:
    run_id = waiting_run(keel, start, tmp_path)

    resumed = start("resume", run_id[:8], "--yes")

    def said() -> bool:
        return "review waits for approval" in resumed.stderr

    eventually(said, "the waiting line of keel resume", DEADLINE)
    assert f"keel approve {run_id[:8]} review" in " ".join(resumed.stderr.split())
    keel.ok("approve", run_id, "review", "--data", '{"reason": "fine"}')
    code, out, err = resumed.finish()
    assert code == 0, err
    assert json.loads(out)["result"]["doubled"] == 4
    assert err.count("review waits for approval") == 1
