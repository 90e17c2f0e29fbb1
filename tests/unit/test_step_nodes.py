"""The built-in steps' nodes (``keel.spec.step_nodes``): what validation accepts and
refuses, where ``secrets`` may be read, the dependencies their templates make, what the
engine hands their tasks (never a secret's value), and filling their templates."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from keel.engine.plan import compile_plan
from keel.errors import SpecError
from keel.runtime.secrets import revealed_now, revealing
from keel.spec.graph import DependencyGraph
from keel.spec.model import HttpNode, ShellNode, SqlNode, WorkflowSpec
from keel.spec.templates import fill_json
from keel.spec.validate import check, parse_spec
from keel.steps.filling import StepTemplateError, filled, step_node, step_timeout

TOKEN = "tok-7f3a9c1e5b"


def _spec(*nodes: dict[str, Any], **fields: Any) -> WorkflowSpec:
    return parse_spec({"name": "steps", "nodes": list(nodes), **fields})


def _fetch(**fields: Any) -> dict[str, Any]:
    return {"id": "fetch", "kind": "http", "url": "https://api.example.com/c", **fields}


def test_every_kind_parses_with_its_defaults_and_names_keels_own_task() -> None:
    spec = _spec(
        _fetch(),
        {"id": "run", "kind": "shell", "command": ["echo", "hi"]},
        {"id": "query", "kind": "sql", "connection": "warehouse", "query": "SELECT 1"},
        {"id": "mail", "kind": "email", "to": ["ops@example.com"], "subject": "hi"},
    )
    assert [node.task for node in spec.nodes] == [
        "keel.steps.http:http_step",
        "keel.steps.shell:shell_step",
        "keel.steps.sql:sql_step",
        "keel.steps.email:email_step",
    ]
    check(spec, resolve_tasks=True)  # every worker may run keel's own steps


@pytest.mark.parametrize(
    ("node", "changes"),
    [
        (_fetch(), False),
        (_fetch(method="post", body={"a": 1}), True),
        (_fetch(method="DELETE"), True),
        (_fetch(method="POST", side_effect=False), False),
        ({"id": "q", "kind": "sql", "connection": "w", "query": " select * from t"}, False),
        (
            {"id": "q", "kind": "sql", "connection": "w", "query": "WITH x AS (SELECT 1) SELECT *"},
            False,
        ),
        (
            {
                "id": "q",
                "kind": "sql",
                "connection": "w",
                "query": "UPDATE t SET a = :a",
                "params": {"a": 1},
            },
            True,
        ),
        ({"id": "s", "kind": "shell", "command": ["ls"]}, True),
        ({"id": "m", "kind": "email", "to": ["a@example.com"], "subject": "s"}, True),
    ],
)
def test_whether_a_step_changes_the_world_follows_its_kind_unless_it_says(
    node: dict[str, Any], changes: bool
) -> None:
    assert _spec(node).nodes[0].changes_the_world is changes  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (_fetch(body={"a": 1}), "a GET request has no body"),
        (_fetch(method="POST", body={"a": 1}, form={"b": "2"}), "either 'body'"),
        (_fetch(method="FETCH"), "'GET', 'HEAD', 'POST'"),
        (_fetch(url=""), "at least 1 character"),
        (
            {
                "id": "q",
                "kind": "sql",
                "connection": "w",
                "query": "SELECT * FROM t WHERE id = '${{ input.id }}'",
            },
            "write :name in the query",
        ),
        ({"id": "s", "kind": "shell", "command": []}, "the command is empty: give the program"),
        (
            {"id": "s", "kind": "shell", "command": "ls -la /tmp"},
            'as a list, e.g. ["ls", "-la", "/tmp"], not the text',
        ),
        ({"id": "s", "kind": "shell", "command": ["ls"], "env": ["A=1"]}, "write a mapping"),
        ({"id": "h", "kind": "http", "url": "u", "headers": ["A: b"]}, "write a mapping"),
        (
            {"id": "q", "kind": "sql", "connection": "c", "query": "SELECT 1", "params": [1]},
            "write a mapping",
        ),
        (
            {"id": "q", "kind": "sql", "connection": "c", "query": "SELECT 1; DROP TABLE x"},
            "more than one statement",
        ),
        (
            {
                "id": "q",
                "kind": "sql",
                "connection": "c",
                "query": "SELECT :id, :min",
                "params": {"id": 1, "mn": 3},
            },
            "uses :min but 'params' gives no min; and params mn not used",
        ),
        (
            {"id": "s", "kind": "shell", "command": ["ls"], "env": {"LD_PRELOAD": "/x.so"}},
            "only the operator may set it",
        ),
        (
            {"id": "s", "kind": "shell", "command": ["ls"], "env": {"DYLD_INSERT_LIBRARIES": "x"}},
            "only the operator may set it",
        ),
        ({"id": "m", "kind": "email", "to": [], "subject": "s"}, "give at least one address"),
    ],
)
def test_a_bad_step_is_refused_naming_the_problem(node: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        _spec(node)
    assert message in str(caught.value)


def test_secrets_are_read_in_a_steps_templates_and_nowhere_else() -> None:
    check(_spec(_fetch(headers={"Authorization": "Bearer ${{ secrets.API_TOKEN }}"})))
    spec = _spec(
        _fetch(headers={"Authorization": "Bearer ${{ secrets.API_TOKEN }}"}),
        {"id": "use", "kind": "task", "task": "m:f", "args": {"t": "${{ secrets.API_TOKEN }}"},
         "when": "secrets.FLAG == 'on'"},
    )  # fmt: skip
    with pytest.raises(SpecError) as caught:
        check(spec)
    text = str(caught.value)
    assert text.count("unknown name 'secrets'") == 2
    assert "read only by the fields of a built-in step" in text
    assert 'keel.secret("NAME")' in text


def test_a_steps_templates_make_its_dependencies_and_are_checked() -> None:
    spec = _spec(
        {"id": "a", "kind": "task", "task": "m:f"},
        {"id": "b", "kind": "task", "task": "m:f"},
        {"id": "run", "kind": "shell", "command": ["echo", "${{ nodes.a.output.x }}"],
         "env": {"B": "id ${{ nodes.b.output }}"}},
    )  # fmt: skip
    assert DependencyGraph.from_spec(spec).parents["run"] == ["a", "b"]
    with pytest.raises(SpecError, match="unknown node 'nope'"):
        check(_spec(_fetch(query={"q": "${{ nodes.nope.output }}"})))


def test_the_engine_hands_a_step_its_unfilled_definition_and_the_values_it_reads() -> None:
    spec = _spec(
        {"id": "a", "kind": "task", "task": "m:f"},
        _fetch(
            method="POST",
            url="https://api.example.com/c/${{ input.id }}",
            headers={"Authorization": "Bearer ${{ secrets.API_TOKEN }}"},
            body={"score": "${{ nodes.a.output.score }}"},
            timeout="20s",
            retry={"max_attempts": 4},
        ),
        defaults={"timeout": "5s"},
    )
    plan = compile_plan(spec).nodes["fetch"]
    assert plan.task == "keel.steps.http:http_step"
    assert plan.max_attempts == 4
    args = {name: (is_expression, value) for name, is_expression, value in plan.args}
    step = args["step"][1]
    assert args["step"][0] is False
    assert step["headers"] == {"Authorization": "Bearer ${{ secrets.API_TOKEN }}"}
    assert step["timeout"] == 20.0
    assert "retry" not in step  # the engine's, not the task's
    assert "after" not in step
    assert args["values"] == (True, '{"input": input, "nodes": {"a": {"output": nodes.a.output}}}')
    without = compile_plan(_spec(_fetch())).nodes["fetch"].args[0][2]
    assert "timeout" not in without  # type: ignore[operator]  (no timeout anywhere: none)


def test_a_json_template_keeps_types_for_whole_expressions_and_writes_text_for_parts() -> None:
    values = {"n": 3, "s": "x", "o": {"k": [1]}}
    filled_value = fill_json(
        {"n": "${{ n }}", "text": "n=${{ n }} o=${{ o }}", "list": ["${{ s }}", 2, None],
         "o": " ${{ o }} ", "plain": "no parts"},
        lambda source: values[source],
    )  # fmt: skip
    assert filled_value == {"n": 3, "text": 'n=3 o={"k": [1]}', "list": ["x", 2, None],
                            "o": {"k": [1]}, "plain": "no parts"}  # fmt: skip


def test_filling_a_step_looks_its_secrets_up_and_reveals_them_to_the_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", TOKEN)
    spec = _spec(
        _fetch(
            url="https://x/${{ input.id }}",
            headers={"Authorization": "Bearer ${{ secrets.API_TOKEN }}"},
        )
    )
    step = compile_plan(spec).nodes["fetch"].args[0][2]
    node = step_node(HttpNode, step)  # type: ignore[arg-type]
    assert step_timeout(step) is None  # type: ignore[arg-type]
    with revealing():
        result = filled(node, {"input": {"id": "C-7"}, "nodes": {}})
        assert revealed_now() == {"API_TOKEN": TOKEN}
    assert result["url"] == "https://x/C-7"
    assert result["headers"] == {"Authorization": f"Bearer {TOKEN}"}


def test_a_template_that_cannot_be_filled_fails_naming_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = ShellNode(id="s", command=["echo", "${{ input.missing }}"])
    with pytest.raises(StepTemplateError, match=r"^command: "):
        filled(node, {"input": {}, "nodes": {}})
    monkeypatch.delenv("KEEL_SECRET_NOPE", raising=False)
    node = ShellNode(id="s", command=["echo", "${{ secrets.NOPE }}"])
    with pytest.raises(Exception, match="secret 'NOPE' is not set"):
        filled(node, {"nodes": {}})


def test_a_step_definition_from_elsewhere_that_does_not_fit_is_refused() -> None:
    with pytest.raises(Exception, match="not a valid SqlNode"):
        step_node(SqlNode, {"id": "q", "kind": "sql", "query": "SELECT 1"})
    with pytest.raises(ValidationError):
        SqlNode(id="q", connection="bad name!", query="SELECT 1")


_COMPUTED = [
    'secrets.API_TOKEN.startsWith("s3")',
    'secrets.API_TOKEN.matches("^s")',
    "size(secrets.API_TOKEN)",
    'secrets.API_TOKEN == "guess"',
    "secrets[input.name]",
]


@pytest.mark.parametrize("source", _COMPUTED)
def test_a_template_that_computes_on_a_secret_is_refused(source: str) -> None:
    """Each of these gives a value the redaction cannot recognise (``true``, a length):
    asked again with other guesses, they spell the secret out into the recorded output."""
    with pytest.raises(SpecError) as caught:
        check(_spec(_fetch(headers={"X-Probe": f"${{{{ {source} }}}}"})))
    assert "computes on a secret" in str(caught.value)


@pytest.mark.parametrize("source", _COMPUTED)
def test_filling_refuses_an_expression_that_computes_on_a_secret(
    monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """A definition that was never validated (an older spec) is refused where it runs."""
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", TOKEN)
    node = ShellNode(id="s", command=["echo", f"${{{{ {source} }}}}"])
    with revealing(), pytest.raises(StepTemplateError, match="computes on a secret"):
        filled(node, {"input": {"name": "API_TOKEN"}, "nodes": {}})


def test_a_secret_read_whole_with_text_around_it_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", TOKEN)
    check(_spec(_fetch(headers={"A": "Bearer ${{ secrets.API_TOKEN }}",
                                "B": '${{ secrets["API_TOKEN"] }}'})))  # fmt: skip
    node = ShellNode(id="s", command=["echo", "x ${{ secrets.API_TOKEN }} y"])
    with revealing():
        assert filled(node, {"input": {}, "nodes": {}})["command"] == ["echo", f"x {TOKEN} y"]


def test_one_item_where_a_list_goes_is_a_list_of_one() -> None:
    spec = _spec(
        {"id": "m", "kind": "email", "to": "ann@example.com", "subject": "s"},
    )
    assert spec.nodes[0].to == ("ann@example.com",)  # type: ignore[union-attr]
    http = _spec({"id": "h", "kind": "http", "url": "u", "ok_status": 201}).nodes[0]
    assert http.ok_status == (201,)  # type: ignore[union-attr]
    shell = _spec({"id": "s", "kind": "shell", "command": ["ls"], "ok_exit_codes": 1}).nodes[0]
    assert shell.ok_exit_codes == (1,)  # type: ignore[union-attr]


def test_a_steps_summary_keeps_a_plain_http_scheme_and_drops_https() -> None:
    from keel.spec.step_words import step_summary

    assert step_summary(HttpNode(id="a", url="https://api.example.com/x")) == (
        "GET api.example.com/x"
    )
    assert step_summary(HttpNode(id="a", url="http://10.0.0.5/x")) == "GET http://10.0.0.5/x"


def test_a_refusal_names_an_address_once_when_the_url_gave_it() -> None:
    import ipaddress

    from keel.steps.http_config import HttpConfig
    from keel.steps.http_guard import HttpAddressRefused

    loopback = ipaddress.ip_address("127.0.0.1")
    said = str(HttpAddressRefused("127.0.0.1", loopback, "loopback", HttpConfig()))
    assert said.startswith("refused to connect to 127.0.0.1: loopback")
    said = str(HttpAddressRefused("localhost", loopback, "loopback", HttpConfig()))
    assert said.startswith("refused to connect to localhost (127.0.0.1): loopback")


def test_a_status_range_written_as_text_says_how_to_write_statuses() -> None:
    with pytest.raises(SpecError) as caught:
        _spec(_fetch(ok_status="200-299"))
    assert "'200-299' is not a status: give a status or a list of them" in str(caught.value)
    assert _spec(_fetch(ok_status=404)).nodes[0].ok_status == (404,)  # type: ignore[union-attr]
