"""``keel.http``, ``keel.shell``, ``keel.sql`` and ``keel.email`` in a Python workflow: the
same spec as the YAML that says the same, future values written as expressions wherever
they sit, dependencies read from them, and clear errors for what cannot work."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

import keel
from keel.authoring.yaml_source import load_yaml_text
from keel.errors import SpecError, TracingError
from keel.spec.graph import DependencyGraph
from keel.spec.model import WorkflowSpec

_HEAD = """
input_schema:
  type: object
  additionalProperties: false
  properties: {id: {type: string}, to: {type: string}}
  required: [id, to]
"""


def from_yaml(text: str) -> WorkflowSpec:
    (spec,) = load_yaml_text(text, "test.yaml")
    return spec


@keel.workflow
def hooks(id: str, to: str) -> Any:
    fetched = keel.http(
        "https://api.example.com/claims/${{ input.id }}",
        headers={"Authorization": "Bearer ${{ token }}"},
        values={"token": keel.secrets.API_TOKEN},
        retries=2,
        timeout="10s",
        id="fetch",
    )
    posted = keel.http(
        "https://api.example.com/notes",
        method="POST",
        body={"claim": id, "tags": ["new", fetched["body"]["tag"]]},
        retry_status=[503],
        on_failure="continue",
    )
    keel.shell(["echo", fetched["status"]], env={"TOKEN": keel.secrets.API_TOKEN}, parse="text")
    rows = keel.sql("claims", "SELECT * FROM notes WHERE claim = :id", params={"id": id},
                    max_rows=10)  # fmt: skip
    return keel.email(
        to=to,
        subject="Claim ${{ input.id }}",
        body="${{ n }} notes",
        values={"n": rows["row_count"]},
        password=keel.secrets.SMTP_PASSWORD,
        when=posted["status"] == 201,
        after=[rows],
    )


HOOKS_YAML = (
    "name: hooks\n"
    + _HEAD
    + """
outputs: {result: nodes.email.output}
nodes:
  - id: fetch
    kind: http
    url: "https://api.example.com/claims/${{ input.id }}"
    headers: {Authorization: "Bearer ${{ secrets.API_TOKEN }}"}
    retry: {max_attempts: 3}
    timeout: 10s
  - id: http
    kind: http
    method: post
    url: https://api.example.com/notes
    body: {claim: "${{ input.id }}", tags: [new, '${{ nodes.fetch.output["body"]["tag"] }}']}
    retry_status: [503]
    on_failure: continue
  - id: shell
    kind: shell
    command: [echo, '${{ nodes.fetch.output["status"] }}']
    env: {TOKEN: "${{ secrets.API_TOKEN }}"}
    parse: text
  - id: sql
    kind: sql
    connection: claims
    query: "SELECT * FROM notes WHERE claim = :id"
    params: {id: "${{ input.id }}"}
    max_rows: 10
  - id: email
    kind: email
    to: ["${{ input.to }}"]
    subject: "Claim ${{ input.id }}"
    body: '${{ nodes.sql.output["row_count"] }} notes'
    password: "${{ secrets.SMTP_PASSWORD }}"
    when: 'nodes.http.output["status"] == 201'
    after: [sql]
"""
)


def test_python_steps_are_the_spec_yaml_gives() -> None:
    assert hooks.spec.model_dump() == from_yaml(HOOKS_YAML).model_dump()
    assert hooks.spec.version == from_yaml(HOOKS_YAML).version


def test_dependencies_come_from_the_values_used() -> None:
    graph = DependencyGraph.from_spec(hooks.spec)
    assert graph.parents == {
        "fetch": [],
        "http": ["fetch"],
        "shell": ["fetch"],
        "sql": [],
        "email": ["http", "sql"],
    }


class Note(BaseModel):
    text: str
    urgent: bool = False


def test_values_inside_bodies_lists_and_models_become_expressions() -> None:
    @keel.workflow
    def flow(claim: dict[str, Any]) -> Any:
        first = keel.http("https://a.example/x", method="PUT", body=Note(text="hi"))
        return keel.http(
            "https://a.example/${{ path }}",
            method="PATCH",
            body={"items": [claim["id"], {"deep": [first["body"]]}], "n": 3, "ok": None},
            query={"q": claim["q"]},
            values={"path": claim["path"]},
        )

    put, patch = flow.spec.nodes
    assert put.model_dump()["body"] == {"text": "hi", "urgent": False}
    assert patch.model_dump()["body"] == {
        "items": ['${{ input.claim["id"] }}', {"deep": ['${{ nodes.http.output["body"] }}']}],
        "n": 3,
        "ok": None,
    }
    assert patch.model_dump()["url"] == 'https://a.example/${{ input.claim["path"] }}'
    assert patch.model_dump()["query"] == {"q": '${{ input.claim["q"] }}'}
    assert DependencyGraph.from_spec(flow.spec).parents["http_2"] == ["http"]


def test_a_value_that_would_close_its_part_early_is_spaced() -> None:
    @keel.workflow
    def flow(n: int) -> Any:
        return keel.shell(["echo", keel.expr("{'a': {'b': n}}", n=n)])

    (node,) = flow.spec.nodes
    (_, item) = node.model_dump()["command"]
    assert item.startswith("${{ ")
    assert item.endswith(" }}")
    assert "}}" not in item[3:-3]


def test_one_address_is_a_list_of_one() -> None:
    @keel.workflow
    def flow(to: str) -> Any:
        return keel.email(to=to, cc=["a@example.com", to], subject="s", body="b")

    (node,) = flow.spec.nodes
    assert node.model_dump()["to"] == ("${{ input.to }}",)
    assert node.model_dump()["cc"] == ("a@example.com", "${{ input.to }}")


def test_each_kind_writes_secrets_as_references_only() -> None:
    @keel.workflow
    def flow() -> Any:
        keel.sql("db", "SELECT :key", params={"key": keel.secrets["DB_KEY"]})
        return keel.email(to="a@example.com", subject="s", username=keel.secrets.SMTP_USER)

    dumped = flow.spec.model_dump_json()
    assert "${{ secrets.DB_KEY }}" in dumped
    assert "${{ secrets.SMTP_USER }}" in dumped


# --- what cannot work ---------------------------------------------------------------------


def test_a_step_outside_a_workflow_says_where_it_belongs() -> None:
    with pytest.raises(TracingError, match=r"keel.http can only be used inside a @keel.workflow"):
        keel.http("https://a.example")
    with pytest.raises(TracingError, match=r"keel.email can only be used inside"):
        keel.email(to="a@example.com", subject="s")


@keel.task
def charge(token: str) -> str:
    return token


def test_a_secret_in_a_task_argument_gets_the_validators_message() -> None:
    with pytest.raises(SpecError) as raised:

        @keel.workflow
        def flow() -> Any:
            return charge(keel.secrets.API_TOKEN)

    message = str(raised.value)
    assert "unknown name 'secrets'" in message
    assert 'a Python task calls keel.secret("NAME")' in message


def test_a_secret_cannot_become_text() -> None:
    with pytest.raises(TracingError, match=r"values=\{\"token\": keel.secrets.API_TOKEN\}"):
        f"Bearer {keel.secrets.API_TOKEN}"


def test_reading_a_secrets_value_while_tracing_is_refused() -> None:
    with pytest.raises(TracingError, match=r"in a workflow use keel.secrets.API_TOKEN"):

        @keel.workflow
        def flow() -> Any:
            return keel.http("https://a.example", headers={"X": keel.secret("API_TOKEN")})


def test_keel_secret_reads_the_value_in_a_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", "s3cret-value")
    assert keel.secret("API_TOKEN") == "s3cret-value"


def test_a_shell_string_is_refused() -> None:
    with pytest.raises(TracingError, match="as a list"):

        @keel.workflow
        def flow() -> Any:
            return keel.shell("echo hi")  # type: ignore[arg-type]


def test_a_future_value_where_a_constant_must_be_is_refused() -> None:
    with pytest.raises(TracingError, match=r"keel.sql\(query=...\) takes a constant"):

        @keel.workflow
        def flow(q: str) -> Any:
            return keel.sql("db", q)  # type: ignore[arg-type]


def test_names_given_but_unused_are_refused() -> None:
    with pytest.raises(TracingError, match=r"used by no \$\{\{ name \}\} part: tokn"):

        @keel.workflow
        def flow() -> Any:
            return keel.http("https://a.example/${{ token }}", values={"tokn": 1})


def test_a_bad_field_is_reported_like_yamls() -> None:
    with pytest.raises(SpecError, match="a GET request has no body"):

        @keel.workflow
        def flow() -> Any:
            return keel.http("https://a.example", body={"a": 1})


def test_a_misspelt_field_is_pythons_type_error_suggesting_the_field() -> None:
    with pytest.raises(TypeError, match=r"keel.http\(\) got an unexpected keyword argument "
                                        r"'header'. Did you mean 'headers'\?"):  # fmt: skip

        @keel.workflow
        def flow() -> Any:
            return keel.http("https://a.example", header={"A": "b"})  # type: ignore[call-arg]


def test_an_f_string_in_a_steps_field_is_told_to_write_a_template() -> None:
    with pytest.raises(TracingError) as caught:

        @keel.workflow
        def flow(claim_id: str) -> Any:
            return keel.http(f"https://a.example/{claim_id}")

    message = str(caught.value)
    assert 'write "${{ claim_id }}" where the value goes' in message
    assert 'values={"claim_id": claim_id}' in message
    assert "keel.http" in message


def test_an_f_string_elsewhere_keeps_the_expression_hint() -> None:
    with pytest.raises(TracingError, match=r"keel.expr"):

        @keel.workflow
        def flow(claim_id: str) -> Any:
            label = f"claim {claim_id}"
            return keel.http("https://a.example/", headers={"X": label})


def test_an_option_that_does_not_exist_is_pythons_type_error() -> None:
    with pytest.raises(TypeError, match="Did you mean 'retries'"):

        @keel.workflow
        def flow() -> Any:
            return keel.shell(["true"], retires=2)  # type: ignore[call-arg]


def test_a_value_that_is_not_json_is_named() -> None:
    with pytest.raises(TracingError, match=r"keel.http\(body=...\): set is not JSON"):

        @keel.workflow
        def flow() -> Any:
            return keel.http("https://a.example", method="POST", body={1, 2})


def test_an_f_string_in_a_query_is_told_to_use_params() -> None:
    with pytest.raises(
        TracingError, match=r'write :claim_id in the query and give params=\{"claim_id": claim_id\}'
    ):

        @keel.workflow
        def flow(claim_id: str) -> Any:
            return keel.sql("db", f"SELECT * FROM t WHERE id = '{claim_id}'")
