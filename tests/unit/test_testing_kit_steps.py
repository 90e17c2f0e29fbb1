"""``keel.testing.run`` and the built-in steps: a stub of an ``http``, ``shell``, ``sql``
or ``email`` node is called with the step's filled fields (input values, upstream
outputs, secrets given with ``secrets=``), and a step not stubbed runs for real (a real
program, a real HTTP server on the loopback) under the ``keel.toml`` of the test's
folder. Secrets given to a run reach its attempts only, and are redacted from what the
run records."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import keel
from keel.errors import InputError
from keel.runtime.secrets import SecretError, lookup
from keel.testing import run
from tests.steps.peers import Peer, Received, json_reply
from tests.steps.smtp_inbox import PASSWORD as SMTP_PASSWORD
from tests.steps.smtp_inbox import serving

TOKEN = "s3cret-token-value"


@keel.task
def lookup_claim(claim_id: str) -> dict[str, Any]:
    return {"id": claim_id, "amount": 120, "owners": ["ann@example.com", "bob@example.com"]}


@keel.task
def uses_a_secret() -> str:
    return f"the key is {keel.secret('API_TOKEN')}"


@keel.workflow
def hooks(claim_id: str) -> dict[str, Any]:
    claim = lookup_claim(claim_id)
    resp = keel.http(
        "https://api.example.com/claims/${{ input.claim_id }}",
        method="POST",
        headers={"Authorization": "Bearer ${{ secrets.API_TOKEN }}"},
        query={"source": "keel"},
        body={"amount": claim["amount"]},
        id="post",
    )
    return {"status": resp["status"], "body": resp["body"]}


@keel.workflow
def shell_flow(name: str) -> dict[str, Any]:
    claim = lookup_claim(name)
    out = keel.shell(
        ["echo", "hello", name, claim["owners"]],
        env={"AMOUNT": claim["amount"]},
        stdin="for ${{ input.name }}",
        id="greet",
    )
    return {"stdout": out["stdout"]}


@keel.workflow
def sql_flow(claim_id: str) -> dict[str, Any]:
    claim = lookup_claim(claim_id)
    rows = keel.sql(
        "claims",
        "SELECT id FROM claims WHERE id = :id AND amount >= :amount",
        params={"id": claim_id, "amount": claim["amount"]},
        id="query",
    )
    return {"count": rows["row_count"]}


@keel.workflow
def email_flow(claim_id: str) -> dict[str, Any]:
    claim = lookup_claim(claim_id)
    mail = keel.email(
        to=["desk@example.com", claim["owners"]],
        cc="boss@example.com",
        subject="Claim ${{ input.claim_id }}",
        body="amount ${{ nodes.lookup_claim.output.amount }}",
        password=keel.secrets.SMTP_PASSWORD,
        id="mail",
    )
    return {"sent_to": mail["to"]}


@keel.workflow
def two_posts(claim_id: str) -> dict[str, Any]:
    first = keel.http("https://a.example.com/${{ input.claim_id }}", id="first")
    second = keel.http("https://b.example.com/x", after=[first], id="second")
    return {"a": first["status"], "b": second["status"]}


@keel.workflow
def secret_task() -> str:
    return uses_a_secret()


@pytest.fixture(autouse=True)
def _no_secrets_in_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing of the worker's environment or folder gives a secret here."""
    for name in list(os.environ):
        if name.startswith("KEEL_SECRET"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


# --- stubs of each kind, called with the filled fields ----------------------------------------


def test_an_http_stub_gets_the_filled_request_and_its_return_is_the_output() -> None:
    calls: list[dict[str, Any]] = []

    def fake_api(url: str, method: str, headers: dict[str, Any], body: Any) -> dict[str, Any]:
        calls.append({"url": url, "method": method, "headers": headers, "body": body})
        return {"status": 201, "headers": {}, "body": {"seen": headers["Authorization"]}}

    r = run(hooks, {"claim_id": "c-7"}, stubs={"post": fake_api}, secrets={"API_TOKEN": TOKEN})

    assert r.status == "succeeded", r.error
    assert calls == [{
        "url": "https://api.example.com/claims/c-7",           # the input
        "method": "POST",
        "headers": {"Authorization": f"Bearer {TOKEN}"},        # the secret, to the stub
        "body": {"amount": 120},                               # the upstream output
    }]  # fmt: skip
    # the stub echoed the secret: the run recorded it redacted
    assert r.node("post").output == {"status": 201, "headers": {},
                                     "body": {"seen": "Bearer [secret API_TOKEN]"}}  # fmt: skip
    assert r.output == {"status": 201, "body": {"seen": "Bearer [secret API_TOKEN]"}}
    assert TOKEN not in str(r.history)


def test_a_stub_taking_every_field_gets_each_of_its_kind() -> None:
    seen: list[dict[str, Any]] = []

    def fake(**fields: Any) -> dict[str, Any]:
        seen.append(fields)
        return {"status": 200, "headers": {}, "body": None}

    r = run(hooks, {"claim_id": "c-1"}, stubs={"post": fake}, secrets={"API_TOKEN": TOKEN})

    assert r.status == "succeeded", r.error
    assert seen == [{
        "url": "https://api.example.com/claims/c-1",
        "method": "POST",
        "headers": {"Authorization": f"Bearer {TOKEN}"},
        "query": {"source": "keel"},
        "body": {"amount": 120},
        "form": None,
    }]  # fmt: skip


def test_a_shell_stub_gets_the_arguments_the_program_would() -> None:
    seen: list[dict[str, Any]] = []

    def fake_echo(command: list[str], env: dict[str, str], stdin: str | None) -> dict[str, Any]:
        seen.append({"command": command, "env": env, "stdin": stdin})
        return {"exit_code": 0, "stdout": " ".join(command[1:]) + "\n", "stderr": "",
                "truncated": {"stdout": False, "stderr": False}}  # fmt: skip

    r = run(shell_flow, {"name": "ann"}, stubs={"greet": fake_echo})

    assert r.status == "succeeded", r.error
    # a list spread into arguments, a number as the text the program gets
    assert seen == [{"command": ["echo", "hello", "ann", "ann@example.com", "bob@example.com"],
                     "env": {"AMOUNT": "120"}, "stdin": "for ann"}]  # fmt: skip
    assert r.output == {"stdout": "hello ann ann@example.com bob@example.com\n"}


def test_a_sql_stub_gets_the_connection_query_and_filled_params() -> None:
    seen: list[tuple[str, str, dict[str, Any]]] = []

    def fake_db(connection: str, query: str, params: dict[str, Any]) -> dict[str, Any]:
        seen.append((connection, query, params))
        return {"rows": [{"id": params["id"]}], "row_count": 1, "columns": ["id"]}

    # no [sql.connections] anywhere: a stubbed step reaches no database
    r = run(sql_flow, {"claim_id": "c-3"}, stubs={"query": fake_db})

    assert r.status == "succeeded", r.error
    assert seen == [("claims", "SELECT id FROM claims WHERE id = :id AND amount >= :amount",
                     {"id": "c-3", "amount": 120})]  # fmt: skip
    assert r.node("query").output == {"rows": [{"id": "c-3"}], "row_count": 1, "columns": ["id"]}
    assert r.output == {"count": 1}


def test_an_email_stub_gets_the_message_and_no_smtp_login() -> None:
    sent: list[dict[str, Any]] = []

    def outbox(**message: Any) -> dict[str, Any]:
        sent.append(message)
        return {"message_id": "<1@example.com>", "to": message["to"] + message["cc"]}

    # the node logs in with ${{ secrets.SMTP_PASSWORD }}; its stub sends nothing, so the
    # secret is not looked up (none is given)
    r = run(email_flow, {"claim_id": "c-9"}, stubs={"mail": outbox})

    assert r.status == "succeeded", r.error
    assert sent == [{
        "to": ["desk@example.com", "ann@example.com", "bob@example.com"],  # a list spread
        "cc": ["boss@example.com"], "bcc": [],
        "subject": "Claim c-9", "body": "amount 120", "html": None,
        "sender": None, "reply_to": None,
    }]  # fmt: skip
    assert r.output == {"sent_to": ["desk@example.com", "ann@example.com", "bob@example.com",
                                    "boss@example.com"]}  # fmt: skip


def test_an_async_stub_of_a_step() -> None:
    async def fake(url: str) -> dict[str, Any]:
        return {"status": 204, "headers": {}, "body": url}

    r = run(hooks, {"claim_id": "c-2"}, stubs={"post": fake}, secrets={"API_TOKEN": TOKEN})

    assert r.status == "succeeded", r.error
    assert r.output == {"status": 204, "body": "https://api.example.com/claims/c-2"}


def test_a_stub_keyed_by_the_step_task_stands_for_every_node_of_that_kind() -> None:
    urls: list[str] = []

    def fake(url: str) -> dict[str, Any]:
        urls.append(url)
        return {"status": 200, "headers": {}, "body": ""}

    r = run(two_posts, {"claim_id": "c-5"}, stubs={"keel.steps.http:http_step": fake})

    assert r.status == "succeeded", r.error
    assert urls == ["https://a.example.com/c-5", "https://b.example.com/x"]


def test_a_stub_that_raises_is_the_step_failing() -> None:
    def down(url: str) -> dict[str, Any]:
        raise ConnectionError("the API is down")

    r = run(hooks, {"claim_id": "c-4"}, stubs={"post": down}, secrets={"API_TOKEN": TOKEN})

    assert r.status == "failed"
    r.assert_node("post", status="failed", error="ConnectionError: the API is down")


def test_a_step_stub_requiring_what_its_kind_has_not_is_refused_before_the_run() -> None:
    def wrong(url: str, payload: dict[str, Any]) -> None: ...

    refused = r"built-in http step .*\(url, method, headers.*requires 'payload'"
    with pytest.raises(InputError, match=refused):
        run(hooks, {"claim_id": "c-1"}, stubs={"post": wrong})


def test_a_stub_template_that_cannot_be_filled_fails_the_step_without_a_retry() -> None:
    r = run(hooks, {"claim_id": "c-1"}, stubs={"post": lambda url: {"status": 200}})

    assert r.status == "failed"
    view = r.assert_node("post", status="failed", attempts=1, error="API_TOKEN")
    assert view.error is not None
    assert "SecretError" in view.error.type


# --- secrets= -----------------------------------------------------------------------------------


def test_a_task_reads_a_given_secret_and_the_run_records_it_redacted() -> None:
    r = run(secret_task, secrets={"API_TOKEN": TOKEN})

    assert r.status == "succeeded", r.error
    assert r.output == {"result": "the key is [secret API_TOKEN]"}


def test_given_secrets_stay_with_their_run() -> None:
    r = run(secret_task, secrets={"API_TOKEN": TOKEN})
    assert r.status == "succeeded", r.error

    # not in this thread's lookups, nor the environment, nor the next run
    assert "KEEL_SECRET_API_TOKEN" not in os.environ
    with pytest.raises(SecretError, match="API_TOKEN"):
        lookup("API_TOKEN")
    later = run(secret_task)
    assert later.status == "failed"
    later.assert_node("uses_a_secret", error="secret 'API_TOKEN' is not set")


def test_given_secrets_come_before_the_environment_which_still_gives_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", "from-the-environment")
    seen: list[str] = []

    def fake(headers: dict[str, Any]) -> dict[str, Any]:
        seen.append(headers["Authorization"])
        return {"status": 200, "headers": {}, "body": None}

    given = run(hooks, {"claim_id": "c-1"}, stubs={"post": fake}, secrets={"API_TOKEN": TOKEN})
    other = run(hooks, {"claim_id": "c-1"}, stubs={"post": fake}, secrets={"OTHER": TOKEN})

    assert (given.status, other.status) == ("succeeded", "succeeded")
    assert seen == [f"Bearer {TOKEN}", "Bearer from-the-environment"]


def test_runs_in_parallel_threads_each_see_their_own_secrets() -> None:
    seen: dict[str, list[str]] = {"one": [], "two": []}
    barrier = threading.Barrier(2, timeout=30)

    def stub_for(name: str) -> Any:
        def fake(headers: dict[str, Any]) -> dict[str, Any]:
            barrier.wait()  # both runs are inside an attempt at once
            seen[name].append(headers["Authorization"])
            return {"status": 200, "headers": {}, "body": None}

        return fake

    results: dict[str, str] = {}

    def one_run(name: str) -> None:
        r = run(hooks, {"claim_id": name}, stubs={"post": stub_for(name)},
                secrets={"API_TOKEN": f"token-of-{name}"})  # fmt: skip
        results[name] = r.status

    threads = [threading.Thread(target=one_run, args=(name,)) for name in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert results == {"one": "succeeded", "two": "succeeded"}
    assert seen == {"one": ["Bearer token-of-one"], "two": ["Bearer token-of-two"]}


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ({"API_TOKEN": "abc"}, "shorter than 4"),
        ({"not a name": "long enough"}, "not a secret name"),
        ({"API_TOKEN": 12345}, "must be text"),
    ],
)
def test_secrets_that_cannot_be_are_refused_before_the_run(
    secrets: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        run(secret_task, secrets=secrets)


# --- steps not stubbed run for real -----------------------------------------------------------


@keel.workflow
def real_echo(name: str) -> dict[str, Any]:
    out = keel.shell(["echo", "hello", "${{ input.name }}"], id="greet")
    return {"stdout": out["stdout"]}


def test_a_shell_step_not_stubbed_runs_the_program_the_keel_toml_allows(tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text('[shell]\nallow = ["echo"]\n')

    r = run(real_echo, {"name": "ann"})

    assert r.status == "succeeded", r.error
    assert r.node("greet").output == {"exit_code": 0, "stdout": "hello ann\n", "stderr": "",
                                      "truncated": {"stdout": False, "stderr": False}}  # fmt: skip


def test_a_shell_step_not_allowed_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "keel.toml").write_text('[shell]\nallow = ["true"]\n')

    r = run(real_echo, {"name": "ann"})

    assert r.status == "failed"
    r.assert_node("greet", status="failed", error="echo")


@keel.workflow
def real_call(url: str) -> dict[str, Any]:
    resp = keel.http("${{ input.url }}", method="POST",
                     headers={"Authorization": "Bearer ${{ secrets.API_TOKEN }}"},
                     body={"ping": True}, id="call")  # fmt: skip
    return {"status": resp["status"], "body": resp["body"]}


def test_an_http_step_not_stubbed_calls_the_loopback_server_keel_toml_allows(
    tmp_path: Path,
) -> None:
    (tmp_path / "keel.toml").write_text('[http]\nallow = ["127.0.0.1"]\n')
    with Peer() as peer:
        peer.routes["/hook"] = lambda got: json_reply(
            {"echo": got.headers["authorization"], "got": got.json()}, status=201
        )

        r = run(real_call, {"url": peer.url("/hook")}, secrets={"API_TOKEN": TOKEN})

        assert r.status == "succeeded", r.error
        (received,) = peer.received
    assert isinstance(received, Received)
    assert (received.method, received.headers["authorization"]) == ("POST", f"Bearer {TOKEN}")
    # the server echoed the secret: the run recorded it redacted
    assert r.output == {"status": 201, "body": {"echo": "Bearer [secret API_TOKEN]",
                                                "got": {"ping": True}}}  # fmt: skip
    assert TOKEN not in str(r.history)


def test_an_http_step_to_the_loopback_is_refused_without_allow() -> None:
    with Peer() as peer:
        r = run(real_call, {"url": peer.url("/hook")}, secrets={"API_TOKEN": TOKEN})

        assert r.status == "failed"
        assert peer.received == []
    r.assert_node("call", status="failed", attempts=1, error="allow")


@keel.workflow
def real_sql(claim_id: str) -> dict[str, Any]:
    rows = keel.sql("claims", "SELECT id, amount FROM claims WHERE id = :id",
                    params={"id": claim_id}, id="query")  # fmt: skip
    return {"rows": rows["rows"]}


def test_a_sql_step_not_stubbed_queries_the_connection_keel_toml_names(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "claims.db") as db:
        db.execute("CREATE TABLE claims (id TEXT, amount REAL)")
        db.executemany("INSERT INTO claims VALUES (?, ?)", [("c-1", 120.0), ("c-2", 80.0)])
    db.close()
    (tmp_path / "keel.toml").write_text('[sql.connections.claims]\nurl = "sqlite:///claims.db"\n')

    r = run(real_sql, {"claim_id": "c-2"})

    assert r.status == "succeeded", r.error
    assert r.output == {"rows": [{"id": "c-2", "amount": 80.0}]}


@keel.workflow
def real_mail(to: str) -> dict[str, Any]:
    mail = keel.email(to="${{ input.to }}", subject="Report", body="all quiet", id="mail")
    return {"to": mail["to"]}


def test_an_email_step_not_stubbed_sends_through_the_smtp_server_of_keel_toml(
    tmp_path: Path,
) -> None:
    with serving() as (port, inbox):
        (tmp_path / "keel.toml").write_text(
            f'[email]\nhost = "127.0.0.1"\nport = {port}\nusername = "keel"\n'
            'password_secret = "SMTP_PASSWORD"\nsender = "keel@example.com"\n'
        )
        r = run(real_mail, {"to": "ann@example.com"}, secrets={"SMTP_PASSWORD": SMTP_PASSWORD})

        assert r.status == "succeeded", r.error
        assert inbox.logins == [(b"keel", SMTP_PASSWORD.encode())]
    assert r.output == {"to": ["ann@example.com"]}
    assert inbox.message()["Subject"] == "Report"
