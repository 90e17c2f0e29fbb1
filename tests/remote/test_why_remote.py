"""Why a run waits, over HTTP: ``Client.why`` against a live server gives the store
client's answer, and ``keel why`` with ``KEEL_SERVER_URL`` prints what it prints
against the database."""

from __future__ import annotations

import json

from keel.runtime.client import Client
from tests.remote.conftest import Served
from tests.remote.test_cli_remote import keel, ok


def test_the_http_client_gives_the_store_clients_reasons(served: Served) -> None:
    with Client(served.url, token=served.tokens["viewer"]) as remote:
        over_http = remote.why(served.waiting[:8])
    local = Client(store=served.store).why(served.waiting)

    assert over_http.model_copy(update={"at": 0.0}) == local.model_copy(update={"at": 0.0})
    assert [node.reason.kind for node in over_http.nodes] == ["approval", "signal", "parents"]


def test_keel_why_over_the_server_prints_what_the_database_gives(served: Served) -> None:
    for run_id in (served.waiting, served.paused, served.failed):
        said = ok(keel(served, "why", run_id[:8], role="viewer"))
        assert said == ok(keel(served, "why", run_id[:8], db=True)), run_id
    document = json.loads(ok(keel(served, "why", served.paused, "--json", role="viewer")))
    assert document["paused"]["by"] == "setup"
