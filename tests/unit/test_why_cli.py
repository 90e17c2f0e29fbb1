"""``keel why RUN`` and the stuck lines of ``keel show``, against a SQLite file: what
holds each node, in words that fit 80 columns (as when piped), and in full with
``--json``; a bad run id is a one-line error. The header says what the run is doing in
the words of ``keel runs`` and ``keel show``; what a worker that stopped, or one without
a task's code, left behind is said as what the store shows, from real workers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from keel.cli.app import app
from keel.engine.events import NodeReclaimed
from keel.runtime.operations.control import cancel_run, start_run
from keel.runtime.operations.interventions import pause_run
from keel.runtime.worker.loop import Worker, WorkerOptions
from keel.spec import parse_spec
from keel.store import WorkerRecord
from keel.store.sqlite import SQLiteStore

TWO = {"name": "two", "nodes": [
    {"id": "a", "task": "m:f"},
    {"id": "review_with_a_long_name", "kind": "approval", "title": "Check the amount",
     "assignees": ["finance"]},
    {"id": "b", "task": "m:f", "after": ["a", "review_with_a_long_name"]}]}  # fmt: skip
FAN = {"name": "fan", "nodes": [{"id": "fan", "kind": "map", "task": "m:g",
                                 "items": "input.items", "item_arg": "i"}]}  # fmt: skip


def keel(db: Path, *args: str) -> Result:
    env = {"COLUMNS": "80", "KEEL_SERVER_URL": None, "KEEL_DATABASE_URL": None}
    return CliRunner().invoke(app, [*args, "--db", f"sqlite:///{db}"], env=env)


def ok(db: Path, *args: str) -> str:
    result = keel(db, *args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert max(len(line) for line in result.stdout.splitlines()) <= 80, result.stdout
    return result.stdout


def started(tmp_path: Path, spec: dict[str, Any], run_input: Any = None) -> tuple[Path, str]:
    """A SQLite file holding one run of ``spec``, which no worker takes."""
    db = tmp_path / "keel.db"
    store = SQLiteStore(db)
    try:
        return db, start_run(store, parse_spec(spec), run_input or {}).id
    finally:
        store.close()


def flat(text: str) -> str:
    return " ".join(text.split())


def status_line(shown: str) -> str:
    """What ``keel show`` says on its status line."""
    (line,) = [line for line in shown.splitlines() if line.startswith("  status")]
    return line.removeprefix("  status").strip()


def test_why_says_what_holds_each_node(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, TWO)

    said = ok(db, "why", run_id[:8])

    lines = said.splitlines()
    assert lines[0] == f"two · run {run_id} · queued, waiting for a worker;"
    assert lines[2].split() == ["node", "status", "why"]
    text = flat(said)
    assert f"· run {run_id} · queued, waiting for a worker; waiting for approval node" in text
    assert "a scheduled queued on 'default' for" in text
    assert "no live worker takes it" in text
    assert "seen" not in text  # the store keeps no stopped worker: nothing is known of them
    assert "review_with_a_long_name awaiting approval 'Check the amount' by finance" in text
    assert "b waiting waits for a, review_with_a_long_name" in text


def test_why_json_gives_each_reason_with_its_data(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, TWO)

    found = json.loads(ok(db, "why", run_id, "--json"))

    assert (found["run_id"], found["status"], found["paused"]) == (run_id, "running", None)
    a, review, b = found["nodes"]
    assert (a["node"], a["reason"]["kind"], a["reason"]["queue"], a["stuck"]) == (
        "a", "no_worker", "default", True)  # fmt: skip
    assert review["reason"] == {"kind": "approval", "title": "Check the amount",
                                "assignees": ["finance"], "role": None,
                                "since": review["reason"]["since"], "due": None}  # fmt: skip
    assert (b["reason"], b["stuck"]) == (
        {"kind": "parents", "parents": ["a", "review_with_a_long_name"]}, False)  # fmt: skip


def test_a_maps_items_held_alike_are_one_line(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, FAN, {"items": [1, 2, 3]})

    said = flat(ok(db, "why", run_id))

    assert "fan (3 items) scheduled queued on 'default' for" in said
    assert len(json.loads(ok(db, "why", run_id, "--json"))["nodes"]) == 3


def test_a_paused_run_says_so_once_and_its_nodes_point_at_it(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, TWO)
    store = SQLiteStore(db)
    pause_run(store, run_id, reason="books closed", by="ops")
    store.close()

    said = flat(ok(db, "why", run_id))

    assert f"two · run {run_id} · paused by ops since" in said  # the header says it
    assert said.count("books closed") == 1
    assert "a scheduled the run is paused; also queued on 'default'" in said


def test_show_prints_a_line_per_stuck_node(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, TWO)

    lines = ok(db, "show", run_id).splitlines()

    stuck = [line for line in lines if line.startswith("  stuck")]
    assert len(stuck) == 1, lines  # the approval is said as "waits for", b by the table
    assert stuck[0].split()[:5] == ["stuck", "a:", "queued", "on", "'default'"]
    assert "no live worker takes it" in flat("\n".join(lines))


def test_the_header_says_what_keel_runs_and_keel_show_say(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, {"name": "pinged", "nodes": [
        {"id": "hear", "kind": "signal", "signal": "go"}]})  # fmt: skip

    said = ok(db, "why", run_id).splitlines()[0]

    assert said == f"pinged · run {run_id} · waiting for signal"  # its status is "running"
    assert status_line(ok(db, "show", run_id)) == "waiting for signal"
    (row,) = [line for line in ok(db, "runs").splitlines() if line.startswith(run_id[:8])]
    assert "waiting for signal" in row


def test_a_worker_that_stopped_cleanly_is_not_said_to_have_never_been(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, TWO)
    store = SQLiteStore(db)
    worker = Worker(store, WorkerOptions(announce=True, queues=("other",)))
    worker.announce()  # listed as live, on another queue
    worker.close()  # stopped cleanly: it removes its row
    store.close()

    said = flat(ok(db, "why", run_id))

    assert "a scheduled queued on 'default' for" in said
    # and nothing of the workers before
    assert "no live worker takes it review_with_a_long_name awaiting" in said
    assert "seen" not in said


def test_a_worker_killed_is_said_as_last_seen(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, TWO)
    store = SQLiteStore(db)
    seen = time.time() - 120  # listed, then killed: not seen since, its row left behind
    store.register_worker(WorkerRecord("h1:101:7:aa", "h1", 101, None, seen - 60, seen))
    store.close()

    said = flat(ok(db, "why", run_id))

    assert "a scheduled queued on 'default' since" in said
    assert "no live worker takes it (one was last seen" in said


GPU = {"name": "gpu", "nodes": [{"id": "train", "task": "gpu_tasks_not_here:train",
                                 "queue": "gpu"}]}  # fmt: skip


def gave_back(store: SQLiteStore, worker: Worker, run_id: str) -> None:
    """Turn ``worker`` until it has given the run's attempt back (it lacks the code)."""
    deadline = time.monotonic() + 30
    while not any(isinstance(e.event, NodeReclaimed) for e in store.history(run_id)):
        assert time.monotonic() < deadline, "the worker never gave the attempt back"
        worker.step(wait=True)


def test_an_attempt_a_worker_had_no_code_for_says_so_not_a_retry(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, GPU)
    store = SQLiteStore(db)
    worker = Worker(store, WorkerOptions(announce=True, queues=("gpu",), code_wait=300.0))
    try:
        gave_back(store, worker, run_id)
        live = flat(ok(db, "why", run_id))
        shown = ok(db, "show", run_id)
    finally:
        worker.close()  # it stops cleanly: its row goes
        store.close()
    stopped = flat(ok(db, "why", run_id))

    host_pid = ":".join(worker.owner.split(":")[:2])
    assert (f"train scheduled no code for task 'gpu_tasks_not_here:train' on {host_pid}, "
            "which gave it back at") in live  # fmt: skip
    assert "next try" in live
    assert "fails if no worker with the code takes it within code_wait (default 300 s)" in live
    assert "retry" not in live
    assert "attempt 1 of 1" not in live
    assert "also" not in live  # a live worker takes its queue: no more to say
    assert status_line(shown) == "queued, waiting for a worker"  # not "no worker has taken it"
    assert "stuck     train: no code for task" in shown
    assert "also queued on 'gpu' for" in stopped
    assert "no live worker takes it" in stopped
    assert "seen" not in stopped
    document = json.loads(ok(db, "why", run_id, "--json"))
    reason = document["nodes"][0]["reason"]
    assert (reason["kind"], reason["task"], reason["workers"]) == (
        "no_code", "gpu_tasks_not_here:train", [{"owner": worker.owner, "times": 1}])  # fmt: skip
    assert document["activity"] == "queued, waiting for a worker"


def test_give_backs_by_several_workers_and_a_later_availability_in_words() -> None:
    from keel.cli.common import local_time
    from keel.cli.why_commands import reason_text
    from keel.runtime.views.why_reasons import AvailableLater, GaveBack, NoCode

    gave = [GaveBack(owner="h1:101:7:aa", times=2), GaveBack(owner="h2:202:7:bb", times=1)]
    no_code = reason_text(NoCode(task="m:f", queue="gpu", workers=gave, since=100.0,
                                 next_try=None))  # fmt: skip
    later = reason_text(AvailableLater(queue="gpu", since=100.0, at=160.0))

    assert no_code.startswith(f"no code for task 'm:f' on h1:101 and h2:202, which gave it "
                              f"back 3 times since {local_time(100.0)}; next try now;")  # fmt: skip
    assert later == f"queued on 'gpu' since {local_time(100.0)}; available at {local_time(160.0)}"


def test_show_puts_a_waits_command_whole_on_its_own_line(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, {"name": "pinged", "nodes": [
        {"id": "hear", "kind": "signal", "signal": "go", "timeout": 3600},
        {"id": "ok", "kind": "approval", "title": "OK?"}]})  # fmt: skip

    lines = ok(db, "show", run_id).splitlines()

    signal = lines.index(next(line for line in lines if "waits for signal 'go', due" in line))
    assert lines[signal].endswith(":")  # too long for one line with its command
    assert lines[signal + 1] == f"            keel signal {run_id[:8]} go --data JSON"
    approval = next(line for line in lines if "waits for approval" in line)
    assert approval.endswith(f"by anyone: keel approve {run_id[:8]} ok (or keel reject)")


def test_an_ended_run_has_nothing_holding_it(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, TWO)
    store = SQLiteStore(db)
    cancel_run(store, run_id, reason="not needed", by="ops")
    store.close()

    said = ok(db, "why", run_id)

    assert said == f"two · run {run_id} · cancelled: it has ended\n"  # one line
    assert "stuck" not in ok(db, "show", run_id)


def test_an_unknown_run_is_a_one_line_error(tmp_path: Path) -> None:
    db, _ = started(tmp_path, TWO)

    result = keel(db, "why", "ffffffff")

    assert result.exit_code == 1
    assert result.stderr == "no run with id 'ffffffff' (see `keel runs`)\n"
    assert result.stdout == ""


def test_runs_show_and_why_say_a_run_waits_for_its_concurrency_key(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "crm",
            "nodes": [
                {"id": "a", "task": "m:f", "concurrency": {"key": "'tenant:acme'", "limit": 1}}
            ],
        }
    )
    db = tmp_path / "keel.db"
    store = SQLiteStore(db)
    try:
        first, second = start_run(store, spec, {}), start_run(store, spec, {})
        assert store.claim("h1:101:7:aa", 1, time.time(), 300.0, run_id=first.id)
    finally:
        store.close()

    wide = CliRunner().invoke(app, ["runs", "--db", f"sqlite:///{db}"],
                              env={"COLUMNS": "200", "KEEL_SERVER_URL": None})  # fmt: skip
    (row,) = [line for line in wide.stdout.splitlines() if line.startswith(second.id[:8])]
    assert "waiting for concurrency key 'tenant:acme'" in row
    held = "waiting for concurrency key 'tenant:acme' (1 of 1 held)"
    assert status_line(ok(db, "show", second.id)) == held
    assert flat(ok(db, "why", second.id)).startswith(f"crm · run {second.id} · {held} ")


def test_show_says_how_to_unpause_a_paused_run(tmp_path: Path) -> None:
    db, run_id = started(tmp_path, TWO)
    store = SQLiteStore(db)
    pause_run(store, run_id, reason="books closed", by="ops")
    store.close()

    shown = ok(db, "show", run_id)

    assert status_line(shown).startswith("paused by ops since ")
    assert status_line(shown).endswith(": books closed")
    assert f"waits for someone to unpause it: keel unpause {run_id[:8]}" in flat(shown)
