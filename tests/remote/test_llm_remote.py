"""The LLM ledger over HTTP: ``Client.llm_calls`` and ``Client.llm_spend`` against a
live server give the store client's documents, and ``keel show``, ``keel calls`` and
``keel spend`` with ``KEEL_SERVER_URL`` print what they print against the database."""

from __future__ import annotations

import json

import pytest

from keel.errors import RunNotFoundError
from keel.runtime.client import Client
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import cancel_run
from tests.llm.ledgerflows import T0, seed
from tests.remote.conftest import Served
from tests.remote.test_cli_remote import keel, ok


def test_the_http_client_gives_the_store_clients_ledger(served: Served) -> None:
    runs = seed(served.store)
    local = Client(store=served.store)
    with Client(served.url, token=served.tokens["viewer"]) as remote:
        for node in (None, "draft", "route"):
            for full in (False, True):
                assert remote.llm_calls(runs.run[:8], node=node, full=full) == local.llm_calls(
                    runs.run, node=node, full=full)  # fmt: skip
        assert remote.llm_spend() == local.llm_spend()
        assert remote.llm_spend(since=T0 - 60, workflow="agents") == local.llm_spend(
            since=T0 - 60, workflow="agents")  # fmt: skip
        with pytest.raises(RunNotFoundError, match="has no node 'nope'"):
            remote.llm_calls(runs.run, node="nope")


def test_the_commands_over_the_server_print_what_the_database_gives(served: Served) -> None:
    runs = seed(served.store)
    # ended: nothing in what it shows depends on the time it is read
    cancel_run(served.store, runs.run, by="tester", clock=FakeClock(T0 + 10))
    for args in (
        ["show", runs.run[:8]], ["calls", runs.run],
        ["calls", runs.run, "draft", "--json"], ["calls", runs.empty], ["spend"],
        ["spend", "--workflow", "tickets", "--json"],
    ):  # fmt: skip
        for columns in (80, 200):
            said = ok(keel(served, *args, role="viewer", columns=columns))
            assert said == ok(keel(served, *args, db=True, columns=columns)), args
    assert "1 possibly billed" in ok(keel(served, "show", runs.run, role="viewer"))
    shown = json.loads(ok(keel(served, "show", runs.run, "--json", role="viewer")))
    assert shown["llm"] == json.loads(ok(keel(served, "show", runs.run, "--json", db=True)))["llm"]
