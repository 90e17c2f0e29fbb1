"""``keel logs`` and ``keel.Client.logs`` through a live server (``KEEL_SERVER_URL``):
the same lines, pages and output as on the database."""

from __future__ import annotations

import json
from typing import Any

from keel.runtime.client import Client
from keel.store.task_logs import AttemptLines, LogLine
from tests.remote.conftest import Served
from tests.remote.test_cli_remote import keel, ok


def keep(served: Served, run_id: str, node: str, attempt: int, *messages: str) -> None:
    lines = [LogLine(1_700_000_000.0 + i, "INFO", m) for i, m in enumerate(messages)]
    served.store.keep_task_logs([AttemptLines(run_id, node, None, attempt, lines)])


def test_the_client_reads_the_same_pages_over_http(served: Served) -> None:
    keep(served, served.waiting, "book", 1, "one", "two")
    keep(served, served.waiting, "book", 2, "three")
    local = Client(store=served.store)
    asking: list[dict[str, Any]] = [{}, {"after": 1}, {"attempt": 2}, {"node": "ping"},
                                    {"node": "book", "limit": 1}]  # fmt: skip
    with Client(served.url, token=served.tokens["viewer"]) as remote:
        for asked in asking:
            run_id = served.waiting[:8]
            assert remote.logs(run_id, **asked) == local.logs(run_id, **asked), asked
        page = remote.logs(served.waiting)
    assert (page.run_id, page.status) == (served.waiting, "running")
    assert [line.message for line in page.lines] == ["one", "two", "three"]


def test_keel_logs_prints_what_it_prints_on_the_database(served: Served) -> None:
    keep(served, served.failed, "book", 1, "a line " * 30, "another")
    for args in (["logs", served.failed], ["logs", served.failed[:8], "--json"],
                 ["logs", served.failed, "book", "--attempt", "1"],
                 ["logs", served.failed, "--follow"]):  # fmt: skip
        assert ok(keel(served, *args, role="viewer")) == ok(keel(served, *args, db=True)), args
    printed = ok(keel(served, "logs", served.failed, "--json", role="viewer"))
    assert [json.loads(line)["message"] for line in printed.splitlines()] == [
        "a line " * 30, "another",
    ]  # fmt: skip


def test_a_run_node_or_attempt_not_there_is_the_same_error_as_on_the_database(
    served: Served,
) -> None:
    for args in (["logs", "nope"], ["logs", served.waiting, "zz"],
                 ["logs", served.waiting, "book", "--attempt", "9"]):  # fmt: skip
        remote, local = keel(served, *args, role="viewer"), keel(served, *args, db=True)
        assert (remote.exit_code, remote.stdout, remote.stderr) == (
            1, "", local.stderr), args  # fmt: skip
    said = keel(served, "logs", "nope", role="viewer").stderr
    assert said == "no run with id 'nope' (see `keel runs`)\n"  # the hint is the CLI's
