"""``keel emit`` on the database and through the server: one run per message id."""

from __future__ import annotations

import json

import pytest

from tests.remote.conftest import Served
from tests.remote.test_cli_remote import keel, ok
from tests.server.hookflows import deploy_hooked


@pytest.mark.parametrize("through", ["database", "server"])
def test_emit_starts_one_run_per_message_id(served: Served, through: str) -> None:
    deploy_hooked(served.store)
    db = through == "database"
    args = ("emit", "order", "--data", '{"amount": 2}', "--id", "msg-1")
    first = ok(keel(served, *args, role="operator", db=db))
    assert first.startswith("hooked: started run")
    again = ok(keel(served, *args, role="operator", db=db))
    assert "was started by this message id before" in again
    (record,) = served.store.list_runs(workflow="hooked")
    assert record.id[:8] in first
    assert record.id[:8] in again
    assert (record.input, record.started_by) == ({"amount": 2}, "event:order")

    listed = json.loads(ok(keel(served, "emit", "order", "--data", '{"amount": 3}', "--json",
                                role="operator", db=db)))  # fmt: skip
    assert [(f["workflow"], f["started"]) for f in listed] == [("hooked", True)]
    assert "no deployed workflow" in ok(keel(served, "emit", "order", "--data", '{"amount": 0}',
                                             role="operator", db=db))  # fmt: skip
    refused = keel(served, "emit", "order", "--data", '{"amount": "x"}', role="operator", db=db)
    assert refused.exit_code != 0
    assert "hooked" in refused.stderr
    assert len(served.store.list_runs(workflow="hooked")) == 2


def test_emit_through_the_server_needs_a_token_that_may_act(served: Served) -> None:
    deploy_hooked(served.store)
    refused = keel(served, "emit", "order", "--data", '{"amount": 2}', role="viewer")
    assert refused.exit_code != 0
    assert served.store.list_runs(workflow="hooked") == []
