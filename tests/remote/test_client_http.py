"""``keel.Client`` over HTTP against a live server: the same methods and values as a
store client, and the server's refusals as keel's own errors."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import keel
from keel.engine.events import ApprovalDecided
from keel.errors import (
    ForbiddenError,
    InputError,
    KeelError,
    RemoteError,
    RunNotFoundError,
    WorkflowNotFoundError,
)
from keel.runtime.client import Client
from tests.remote.conftest import Served, free_port, serving
from tests.remote.remoteflows import loud


@pytest.fixture
def operator(served: Served) -> Iterator[Client]:
    with Client(served.url, token=served.tokens["operator"]) as client:
        yield client


def test_a_url_of_a_server_makes_an_http_client(served: Served, operator: Client) -> None:
    assert operator.remote
    assert operator.store is None
    assert not Client(store=served.store).remote


def test_reads_give_what_the_store_gives(served: Served, operator: Client) -> None:
    local = Client(store=served.store)
    assert operator.history(served.waiting) == served.store.history(served.waiting)
    assert operator.approvals() == local.approvals()
    assert operator.approvals(run_id=served.waiting[:8]) == local.approvals(run_id=served.waiting)
    assert operator.failed() == local.failed()
    assert operator.circuits() == local.circuits()
    assert operator.workflows() == local.workflows()
    assert operator.workflows("review") == local.workflows("review")
    assert operator.verify(served.waiting) == local.verify(served.waiting)
    assert [r.id for r in operator.runs()] == [r.id for r in local.runs()]
    remote_run, stored = operator.run(served.failed), served.store.get_run(served.failed)
    assert (remote_run.id, remote_run.status, remote_run.reason, remote_run.last_seq) == (
        stored.id, stored.status, stored.reason, stored.last_seq)  # fmt: skip


def test_lists_and_histories_page_on(
    served: Served, operator: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pages of two, a list of five runs and a whole history take several
    requests (the cursor, ``next_after``) and lose or repeat nothing."""
    from keel.runtime.transports import http

    monkeypatch.setattr(http, "_RUNS_PAGE", 2)
    monkeypatch.setattr(http, "_EVENTS_PAGE", 2)
    for n in range(3):
        operator.start("review", {"amount": n})
    local = Client(store=served.store)
    assert [r.id for r in operator.runs(limit=5)] == [r.id for r in local.runs(limit=5)]
    assert [r.id for r in operator.runs(limit=100)] == [r.id for r in local.runs(limit=100)]
    assert len(served.store.history(served.failed)) > 2
    assert operator.history(served.failed) == served.store.history(served.failed)


def test_start_by_name_records_the_token_as_starter(served: Served, operator: Client) -> None:
    run_id = operator.start("review", {"amount": 3})
    record = served.store.get_run(run_id)
    assert (record.workflow, record.input, record.started_by) == ("review", {"amount": 3},
                                                                   "operator-1")  # fmt: skip


@pytest.mark.parametrize("remote", [True, False])
def test_an_idempotency_key_starts_one_run(served: Served, remote: bool) -> None:
    with (Client(served.url, token=served.tokens["operator"]) if remote
          else Client(store=served.store)) as client:  # fmt: skip
        first = client.start("review", {"amount": 1}, idempotency_key="order-7")
        again = client.start("review", {"amount": 1}, idempotency_key="order-7")
        other = client.start("review", {"amount": 1}, idempotency_key="order-8")
    assert first == again != other


def test_a_workflow_object_starts_its_own_deployed_version(
    served: Served, operator: Client
) -> None:
    with pytest.raises(WorkflowNotFoundError, match="no workflow named 'loud'"):
        operator.start(loud, {"text": "hi"})
    with Client(served.url, token=served.tokens["admin"]) as admin:
        (done,) = admin.deploy(loud)
    assert done["version"] == loud.spec.version
    run_id = operator.start(loud, {"text": "hi"})
    assert served.store.get_run(run_id).spec_version == loud.spec.version


def test_approve_over_http_records_the_tokens_name(served: Served) -> None:
    with Client(served.url, token=served.tokens["approver"]) as approver:
        record = approver.approve(served.waiting, "check", comment="fine")
    assert record.id == served.waiting
    (decided,) = [e.event for e in served.store.history(served.waiting)
                  if isinstance(e.event, ApprovalDecided)]  # fmt: skip
    assert (decided.approved, decided.by, decided.comment) == (True, "approver-1", "fine")


def test_actions_change_the_run(served: Served, operator: Client) -> None:
    assert operator.unpause(served.paused).status != "paused"
    assert operator.pause(served.paused, reason="hold").status == "paused"
    assert operator.retry(served.failed).status != "failed"
    assert operator.signal(served.waiting, "ping", {"n": 1}).id == served.waiting
    assert operator.cancel(served.waiting, reason="done").status == "cancelled"


def test_refusals_are_keels_errors(served: Served, operator: Client) -> None:
    with pytest.raises(RunNotFoundError, match="no run"):
        operator.run("0000ffff")
    with pytest.raises(WorkflowNotFoundError, match="nope"):
        operator.start("nope")
    with pytest.raises(InputError):
        operator.start("review", {"amount": "ten"})
    with pytest.raises(KeelError) as conflict:  # the run has ended: nothing to approve
        operator.retry(served.waiting)
    assert not isinstance(conflict.value, RemoteError)
    with Client(served.url, token=served.tokens["viewer"]) as viewer, \
            pytest.raises(ForbiddenError, match="role viewer"):  # fmt: skip
        viewer.cancel(served.waiting)
    with pytest.raises(KeelError, match="`by` cannot be given"):
        operator.cancel(served.waiting, by="someone")


def test_a_bad_token_or_none_says_so(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    with Client(served.url, token="keel_wrong") as client, \
            pytest.raises(RemoteError, match="refused the token") as refused:  # fmt: skip
        client.runs()
    assert refused.value.status == 401
    monkeypatch.delenv("KEEL_TOKEN", raising=False)
    with Client(served.url) as client, pytest.raises(RemoteError, match="needs a token"):
        client.runs()
    monkeypatch.setenv("KEEL_TOKEN", served.tokens["viewer"])
    with Client(served.url) as client:
        assert client.runs()


def test_no_server_there_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, token="keel_x") as client, pytest.raises(RemoteError, match=url):
        client.runs()


def test_keel_client_is_the_one_client(served: Served) -> None:
    with keel.Client(served.url, token=served.tokens["viewer"]) as client:
        assert isinstance(client, Client)
        assert client.detail(served.waiting)["nodes"]


def test_https_checks_the_servers_certificate(served: Served, tmp_path: Path) -> None:
    """Over TLS (``keel serve --ssl-certfile``): a certificate no CA given vouches for
    is refused, naming the URL; with its CA (here itself) the client works."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    with serving(served.store, ssl_certfile=str(cert), ssl_keyfile=str(key)) as url:
        assert url.startswith("https://")
        token = served.tokens["viewer"]
        with Client(url, token=token) as client, pytest.raises(RemoteError, match=url):
            client.runs()
        with Client(url, token=token, verify=str(cert)) as client:
            assert {r.id for r in client.runs()} >= {served.waiting, served.failed}


def test_late_runs_are_listed_as_the_store_lists_them(served: Served, operator: Client) -> None:
    from tests.unit.late_runs import make_late_runs

    runs = make_late_runs(served.store)
    local = Client(store=served.store)

    late = {runs.running, runs.finished}
    assert {r.id for r in operator.runs(late=True)} == late
    assert {r.id for r in operator.runs(late=True)} == {r.id for r in local.runs(late=True)}
    assert {r.id for r, _ in operator.runs_doing(late=True)} == late
    assert runs.on_time in {r.id for r in operator.runs(late=False)} - late
    assert [r.late for r in operator.runs(workflow="slow")] == [
        r.late for r in local.runs(workflow="slow")]  # fmt: skip
