"""The run commands with ``KEEL_SERVER_URL`` set: they act through the server (no
database given), print what they print against the database, and say clearly what they
cannot do over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from keel.cli.app import app
from keel.engine.events import ApprovalDecided
from tests.remote.conftest import Served

FLOWS = Path(__file__).with_name("remoteflows.py")


def keel(served: Served | None, *args: str, role: str = "admin", token: str | None = None,
         db: bool = False, columns: int = 200) -> Result:  # fmt: skip
    """A command with the server (``served``) or, with ``db``, the database instead."""
    env = {"COLUMNS": str(columns), "KEEL_DATABASE_URL": None, "KEEL_SERVER_URL": None,
           "KEEL_TOKEN": None}  # fmt: skip
    if served is not None and not db:
        env["KEEL_SERVER_URL"] = served.url
        env["KEEL_TOKEN"] = token if token is not None else served.tokens[role]
    elif served is not None:
        env["KEEL_DATABASE_URL"] = f"sqlite:///{served.db}"
    return CliRunner().invoke(app, list(args), env=env)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def test_reads_print_what_the_database_gives(served: Served) -> None:
    for args in (
        ["show", served.waiting[:8]], ["show", served.failed, "--json"],
        ["history", served.failed], ["history", served.failed, "--json"],
        ["history", served.waiting, "--node", "check"], ["approvals"], ["approvals", "--json"],
        ["failed"], ["failed", "--json"], ["circuits"], ["workflows"], ["workflows", "review"],
        ["workflows", "--json"], ["verify", served.failed], ["runs", "--status", "failed"],
        ["runs"], ["runs", "--json"],  # what a run not ended is doing: waiting for approval
        ["runs", "--started-by", "nobody", "--json"],
    ):  # fmt: skip
        assert ok(keel(served, *args)) == ok(keel(served, *args, db=True)), args
    listed = json.loads(ok(keel(served, "runs", "--json")))
    assert {run["id"] for run in listed} == {served.waiting, served.failed, served.paused}


def test_approve_records_the_tokens_name(served: Served) -> None:
    said = ok(keel(served, "approve", served.waiting[:8], "check", "--comment", "ok",
                   role="approver"))  # fmt: skip
    assert f"run {served.waiting[:8]}: check approved" in said
    (decided,) = [e.event for e in served.store.history(served.waiting)
                  if isinstance(e.event, ApprovalDecided)]  # fmt: skip
    assert (decided.by, decided.comment) == ("approver-1", "ok")


def test_actions_through_the_server(served: Served) -> None:
    assert "signal ping delivered" in ok(keel(served, "signal", served.waiting, "ping"))
    assert "paused" in ok(keel(served, "pause", served.waiting, "--reason", "hold"))
    assert "unpaused" in ok(keel(served, "unpause", served.waiting))
    assert "cancelled" in ok(keel(served, "cancel", served.paused))
    assert served.store.get_run(served.paused).status == "cancelled"
    retried = keel(served, "retry", served.failed, "--detach")
    assert retried.exit_code == 0, retried.stderr
    assert "retried" in retried.stderr
    assert served.store.get_run(served.failed).status != "failed"
    assert "rejected" in ok(keel(served, "reject", served.failed, "check", role="approver"))
    skipped = keel(served, "skip", served.failed, "check", "--output", '"fine"', "--detach")
    assert skipped.exit_code == 0, skipped.stderr
    assert "set by hand" in skipped.stderr


def test_start_by_name_once_per_key(served: Served) -> None:
    run_id = ok(keel(served, "start", "review", "-i", "amount=5", role="operator")).strip()
    record = served.store.get_run(run_id)
    assert (record.input, record.started_by) == ({"amount": 5}, "operator-1")
    first = ok(keel(served, "start", "review", "--idempotency-key", "k1")).strip()
    assert ok(keel(served, "start", "review", "--idempotency-key", "k1")).strip() == first
    local = ok(keel(served, "start", "review", "--idempotency-key", "k1", db=True)).strip()
    assert local == first  # the same key on either transport is the same run


def test_deploy_traces_here_and_posts_the_definition(served: Served) -> None:
    from tests.remote.remoteflows import loud

    said = ok(keel(served, "deploy", str(FLOWS)))
    assert f"deployed loud version {loud.spec.version[:12]} (current)" in said
    (deployed,) = served.store.deployments("loud")
    assert (deployed.version, deployed.deployed_by) == (loud.spec.version, "admin-1")
    assert "loud" in ok(keel(served, "workflows"))
    run_id = ok(keel(served, "start", "loud", "-i", "text=hi")).strip()
    assert served.store.get_run(run_id).workflow == "loud"


@pytest.mark.parametrize(
    ("role", "args", "said"),
    [
        ("admin", ["approve", "RUN", "check", "--by", "mallory"], "records the token's name"),
        ("admin", ["run", str(FLOWS)], "keel run executes the run in this process"),
        ("admin", ["resume"], "needs the database"),
        ("admin", ["retry", "RUN"], "keel retry (without --detach)"),
        ("viewer", ["approve", "RUN", "check"], "which may not decide"),
        ("operator", ["approve", "RUN", "check"], "which may not decide"),
        ("viewer", ["show", "0000ffff"], "no run"),
        ("operator", ["start", "nope"], "no workflow named 'nope'"),
        ("operator", ["start", "review", "-i", "amount=ten"], "amount"),
    ],
)
def test_refusals_are_one_clear_line(served: Served, role: str, args: list[str], said: str) -> None:
    args = [served.waiting if a == "RUN" else a for a in args]
    result = keel(served, *args, role=role)
    assert result.exit_code == 1, result.stdout
    assert said in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not [e for e in served.store.history(served.waiting)
                if isinstance(e.event, ApprovalDecided)]  # fmt: skip


def test_a_wrong_token_says_so(served: Served) -> None:
    result = keel(served, "runs", token="keel_not-a-token")
    assert result.exit_code == 1
    assert f"the keel server at {served.url} refused the token" in result.stderr
    assert "KEEL_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_server_there_names_the_url(served: Served) -> None:
    from tests.remote.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["runs"], env={"KEEL_SERVER_URL": url, "KEEL_TOKEN": "x"})
    assert result.exit_code == 1
    assert f"cannot reach the keel server at {url}" in result.stderr


def test_a_command_that_continues_the_run_here_takes_the_database(served: Served) -> None:
    """``keel skip`` without ``--detach`` may continue the run in this process, so with
    a database given as well as a server it acts on the database (``--by`` allowed)."""
    from keel.engine.events import NodeSetByHand

    env = {"KEEL_SERVER_URL": served.url, "KEEL_TOKEN": served.tokens["viewer"],
           "KEEL_DATABASE_URL": f"sqlite:///{served.db}", "COLUMNS": "200"}  # fmt: skip
    result = CliRunner().invoke(app, ["skip", served.waiting, "ping", "--by", "ops", "--yes"],
                                env=env)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (done,) = [e.event for e in served.store.history(served.waiting)
               if isinstance(e.event, NodeSetByHand)]  # fmt: skip
    assert done.by == "ops"
