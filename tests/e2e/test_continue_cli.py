"""Continuing a run that waits for a person, in real processes: ``keel resume`` says what
the run waits for (as ``keel run`` does) even when the wait opened before it started, and
a decision on a run that nothing executes says how to continue it."""

from __future__ import annotations

import json
import signal
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


HINT = "queued, no worker is running it: continue with `keel resume {}`"


def interrupted_run(keel: Keel, start: Start, tmp_path: Path) -> str:
    """A run of ``reviewed`` waiting for approval ``review``, whose ``keel run`` was
    interrupted as with Ctrl-C (it gives back what it held and stops)."""
    first = start("run", flow("reviewed"), "-i", f"log={tmp_path / 'tasks.log'}", "-i", "amount=2")
    run_id = only_run(keel)
    wait_for_approval(keel, run_id, "review")
    first.proc.send_signal(signal.SIGINT)
    assert first.proc.wait(timeout=DEADLINE) == 130, first.stderr
    return run_id


def test_a_decision_on_a_run_nothing_executes_says_how_to_continue(
    keel: Keel, start: Start, tmp_path: Path
) -> None:
    run_id = interrupted_run(keel, start, tmp_path)

    approved = keel.ok("approve", run_id[:8], "review", "--data", '{"reason": "fine"}')

    assert approved.stdout.strip() == f"run {run_id[:8]}: review approved (running)"
    assert approved.stderr.splitlines() == [
        HINT.format(run_id[:8]), "(or start `keel worker`)"
    ]  # fmt: skip
    resumed = keel("resume", run_id[:8], "--yes", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["result"]["doubled"] == 4


def test_a_decision_on_a_run_a_process_executes_says_nothing_more(
    keel: Keel, start: Start, tmp_path: Path
) -> None:
    run_id = interrupted_run(keel, start, tmp_path)
    resumed = start("resume", run_id[:8], "--yes")
    eventually(lambda: "review waits for approval" in resumed.stderr, "keel resume", DEADLINE)

    approved = keel.ok("approve", run_id[:8], "review", "--data", '{"reason": "fine"}')

    # the resumed process may finish the run before ``keel approve`` reads its status back
    assert approved.stdout.strip() in {
        f"run {run_id[:8]}: review approved (running)",
        f"run {run_id[:8]}: review approved (succeeded)",
    }
    assert approved.stderr == ""
    code, out, err = resumed.finish()
    assert code == 0, err
    assert json.loads(out)["result"]["doubled"] == 4


def test_unpausing_a_run_nothing_executes_says_how_to_continue(
    keel: Keel, start: Start, tmp_path: Path
) -> None:
    run_id = interrupted_run(keel, start, tmp_path)
    keel.ok("pause", run_id[:8])
    keel.ok("approve", run_id[:8], "review", "--data", '{"reason": "fine"}')

    unpaused = keel.ok("unpause", run_id[:8])

    assert HINT.format(run_id[:8]) in unpaused.stderr


def test_retry_says_what_the_retried_run_waits_for(
    keel: Keel, start: Start, tmp_path: Path
) -> None:
    run_id = interrupted_run(keel, start, tmp_path)
    keel.ok("reject", run_id[:8], "review", "--comment", "not yet")
    assert keel.show(run_id)["status"] == "failed"

    retried = start("retry", run_id[:8], "--yes")  # reopens the approval, then waits

    eventually(lambda: "review waits for approval" in retried.stderr, "keel retry", DEADLINE)
    assert f"keel approve {run_id[:8]} review" in " ".join(retried.stderr.split())
    keel.ok("approve", run_id[:8], "review", "--data", '{"reason": "fine"}')
    code, out, err = retried.finish()
    assert code == 0, err
    assert json.loads(out)["result"]["doubled"] == 4
