"""``keel fork`` with ``KEEL_SERVER_URL``: ``--detach`` (and ``--dry-run``) go through
the server, which records the token's name as who forked; without ``--detach`` the
fork runs here, which needs the database."""

from __future__ import annotations

import json

from keel.engine.events import RunForked
from tests.remote.conftest import Served
from tests.remote.test_cli_remote import keel, ok


def test_a_fork_through_the_server_is_recorded_as_the_tokens(served: Served) -> None:
    dry = json.loads(ok(keel(served, "fork", served.failed, "--from", "book", "--dry-run",
                             "--json", role="operator")))  # fmt: skip
    assert (dry["run_id"], dry["source"]) == (None, served.failed)

    refused = keel(served, "fork", served.failed, "--from", "book", "--detach", role="operator")
    assert refused.exit_code == 1
    assert "pass --yes to start the fork" in " ".join(refused.stderr.split())

    result = keel(served, "fork", served.failed, "--from", "book", "--detach", "--yes",
                  "--set", "input.amount=7", role="operator")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    new = result.stdout.strip()
    assert served.store.get_run(new).input == {"amount": 7}
    mark = served.store.history(served.failed)[-1].event
    assert isinstance(mark, RunForked)
    assert (mark.run_id, mark.by) == (new, "operator-1")


def test_a_fork_run_here_needs_the_database(served: Served) -> None:
    result = keel(served, "fork", served.failed, "--from", "book", "--yes", role="operator")
    assert result.exit_code == 1
    assert "keel fork (without --detach) executes the run in this process" in result.stderr
    by = keel(served, "fork", served.failed, "--from", "book", "--detach", "--by", "x")
    assert by.exit_code == 1
    assert "records the token's name" in by.stderr
