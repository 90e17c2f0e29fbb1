"""The spec model: parsing data, argument shorthand, node kinds, policies, triggers, ids,
effective policies and the canonical JSON that a workflow's version is the hash of."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from keel.errors import SpecError, SpecIssue
from keel.spec.canonical import canonical_data, canonical_json, spec_json
from keel.spec.model import ExprArg, JoinRule, LiteralArg, MapNode, TaskNode
from keel.spec.policies import (
    DEFAULT_QUEUE,
    NodeDefaults,
    NodePolicies,
    RetryPolicy,
    effective_policies,
)
from keel.spec.triggers import EventTrigger, ScheduleTrigger, WebhookTrigger
from keel.spec.validate import parse_spec


def _workflow(*nodes: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "w", "nodes": list(nodes) or [{"id": "a", "task": "m:f"}], **fields}


def _node(**fields: Any) -> dict[str, Any]:
    return {"id": "a", "task": "m:f", **fields}


def _issues(data: Any) -> list[SpecIssue]:
    with pytest.raises(SpecError) as raised:
        parse_spec(data)
    return raised.value.issues


def _one_issue(data: Any) -> SpecIssue:
    [issue] = _issues(data)
    return issue


def _args(**args: Any) -> dict[str, ExprArg | LiteralArg]:
    spec = parse_spec(_workflow(_node(args=args)))
    return spec.nodes[0].args


# --- parsing ------------------------------------------------------------------------------


def test_minimal_spec_gets_its_defaults() -> None:
    spec = parse_spec({"name": "w", "nodes": [{"id": "a", "task": "pkg.mod:fn"}]})
    [node] = spec.nodes
    assert isinstance(node, TaskNode)
    assert (node.id, node.kind, node.task) == ("a", "task", "pkg.mod:fn")
    assert node.args == {}
    assert node.after == ()
    assert node.when is None
    assert node.join is JoinRule.NONE_FAILED
    assert spec.input_schema == {"type": "object"}
    assert spec.outputs == {}
    assert spec.triggers == ()


def test_a_spec_is_frozen() -> None:
    spec = parse_spec(_workflow())
    with pytest.raises(ValidationError):
        spec.name = "other"  # type: ignore[misc]


def test_node_lookup_names_the_workflow_when_missing() -> None:
    spec = parse_spec(_workflow())
    assert spec.node("a").id == "a"
    with pytest.raises(KeyError, match="workflow 'w' has no node 'zz'"):
        spec.node("zz")


def test_not_a_mapping_is_a_spec_error() -> None:
    issue = _one_issue(["not", "a", "workflow"])
    assert issue.loc == ()


def test_every_structural_problem_is_reported_at_once() -> None:
    data = {
        "name": "1bad",
        "nodes": [_node(id="2x", timeout=-1), _node(id="b", kind="bogus")],
        "surprise": True,
    }
    issues = _issues(data)
    locs = {issue.loc for issue in issues}
    assert ("name",) in locs
    assert ("nodes", 0, "id") in locs
    assert ("nodes", 0, "timeout") in locs
    assert ("nodes", 1) in locs
    assert ("surprise",) in locs


def test_missing_and_unknown_fields_are_named() -> None:
    missing = _one_issue({"nodes": [_node()]})
    assert missing.loc == ("name",)
    assert missing.message == "missing required field 'name'"
    unknown = _one_issue(_workflow(_node(retires=3)))
    assert unknown.loc == ("nodes", 0, "retires")
    assert unknown.node == "a"
    assert unknown.message == "unknown field 'retires' (did you mean 'retry'?)"
    assert unknown.code == "extra_forbidden"


def test_issue_text_names_the_workflow_node_and_field() -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(_workflow(_node(priority=5000)))
    text = str(raised.value)
    assert text.startswith("workflow 'w' is invalid (1 problem):")
    assert "node 'a', priority:" in text


# --- arguments ----------------------------------------------------------------------------


def test_whole_template_is_an_expression() -> None:
    assert _args(x="${{ input.x }}")["x"] == ExprArg(expr="input.x")


@pytest.mark.parametrize(
    "written", ["${{input.x > 1}}", "  ${{   input.x  >  1 }}  ", "${{\n  input.x >\n    1\n}}"]
)
def test_template_expressions_are_normalised(written: str) -> None:
    assert _args(x=written)["x"] == ExprArg(expr="input.x > 1")


def test_a_template_keeps_braces_of_map_literals() -> None:
    assert _args(x='${{ {"a": {"b": input.x}} }}')["x"] == ExprArg(expr='{"a": {"b": input.x}}')


@pytest.mark.parametrize(
    "value", ["plain text", "", "$ {{ not a template }}", 3, 2.5, True, None, [1, "a"], {"k": 1}]
)
def test_anything_else_is_a_literal(value: Any) -> None:
    assert _args(x=value)["x"] == LiteralArg(value=value)


def test_explicit_forms() -> None:
    args = _args(
        e={"expr": "input.y  +  1"},
        v={"value": "${{ input.y }}"},
        nested={"value": {"expr": "input.y"}},
        both={"expr": "input.y", "value": 1},
    )
    assert args["e"] == ExprArg(expr="input.y + 1")
    assert args["v"] == LiteralArg(value="${{ input.y }}"), "an explicit value is never parsed"
    assert args["nested"] == LiteralArg(value={"expr": "input.y"})
    assert args["both"] == LiteralArg(value={"expr": "input.y", "value": 1})


def test_argument_models_are_accepted_as_they_are() -> None:
    data = _workflow(_node(args={"e": ExprArg(expr="input.y"), "v": LiteralArg(value="z")}))
    args = parse_spec(data).nodes[0].args
    assert args == {"e": ExprArg(expr="input.y"), "v": LiteralArg(value="z")}


@pytest.mark.parametrize(
    "written", ["Claim ${{ input.id }}", "${{ input.a }} and ${{ input.b }}", "${{ input.id }}!"]
)
def test_text_mixed_with_a_template_is_a_clear_error(written: str) -> None:
    issue = _one_issue(_workflow(_node(args={"doc": written})))
    assert issue.loc == ("nodes", 0, "args", "doc")
    assert issue.node == "a"
    assert "either a whole ${{ expression }} or a literal" in issue.message
    assert '${{ "Claim " + input.id }}' in issue.message, "the message shows how to combine"


def test_an_explicit_expression_must_be_text() -> None:
    issues = _issues(_workflow(_node(args={"x": {"expr": 3}})))
    assert issues
    assert all(issue.loc[:4] == ("nodes", 0, "args", "x") for issue in issues)
    assert any(issue.code == "string_type" for issue in issues)


# --- node kinds ---------------------------------------------------------------------------


def test_kind_defaults_to_task_and_map_is_discriminated() -> None:
    spec = parse_spec(
        _workflow(
            _node(id="t"),
            {"id": "m", "kind": "map", "task": "m:g", "items": "input.xs", "item_arg": "x"},
        )
    )
    task, mapped = spec.nodes
    assert isinstance(task, TaskNode)
    assert task.kind == "task"
    assert isinstance(mapped, MapNode)
    assert (mapped.items, mapped.item_arg, mapped.max_parallel) == ("input.xs", "x", None)


def test_unknown_kind_names_the_kinds() -> None:
    issue = _one_issue(_workflow(_node(kind="subflow")))
    assert issue.code == "unknown_node_kind"
    assert issue.loc == ("nodes", 0)
    assert issue.node == "a"
    assert "'task', 'map', 'approval'" in issue.message


def test_a_map_needs_items_and_item_arg() -> None:
    issues = _issues(_workflow(_node(kind="map")))
    assert {(issue.loc, issue.message) for issue in issues} == {
        (("nodes", 0, "items"), "missing required field 'items'"),
        (("nodes", 0, "item_arg"), "missing required field 'item_arg'"),
    }


def test_map_fields_are_not_task_fields() -> None:
    issue = _one_issue(_workflow(_node(items="input.xs")))
    assert issue.loc == ("nodes", 0, "items")
    assert issue.code == "extra_forbidden"


def test_map_limits() -> None:
    node = {"id": "m", "kind": "map", "task": "m:g", "items": "input.xs", "item_arg": "x"}
    issue = _one_issue(_workflow({**node, "max_parallel": 0}))
    assert issue.loc == ("nodes", 0, "max_parallel")
    issue = _one_issue(_workflow({**node, "item_arg": "not-a-name"}))
    assert issue.loc == ("nodes", 0, "item_arg")


def test_the_task_field_keeps_its_place_in_the_location() -> None:
    # the union tag of a task node is also "task": only the tag may be dropped from loc
    issue = _one_issue(_workflow(_node(task="no_colon")))
    assert issue.loc == ("nodes", 0, "task")
    assert "write 'package.module:function'" in issue.message


@pytest.mark.parametrize("path", ["pkg.mod:fn", "mod:Class.method", "_a.b_c:_f1"])
def test_valid_import_paths(path: str) -> None:
    assert parse_spec(_workflow(_node(task=path))).nodes[0].task == path


@pytest.mark.parametrize("path", ["mod", "mod:", ":fn", "mod:fn()", "1mod:fn", "a..b:f", "m:f\n"])
def test_invalid_import_paths(path: str) -> None:
    issue = _one_issue(_workflow(_node(task=path)))
    assert issue.loc == ("nodes", 0, "task")


# --- node ids and names -------------------------------------------------------------------


@pytest.mark.parametrize("node_id", ["a", "_private", "extract_2", "A1"])
def test_valid_node_ids(node_id: str) -> None:
    assert parse_spec(_workflow(_node(id=node_id))).nodes[0].id == node_id


@pytest.mark.parametrize("node_id", ["1a", "9", "a-b", "a.b", "a b", "", "a\n", "é"])
def test_ids_expressions_cannot_address_are_refused(node_id: str) -> None:
    issue = _one_issue(_workflow(_node(id=node_id)))
    assert issue.loc == ("nodes", 0, "id")
    assert "nodes.<id>" in issue.message


@pytest.mark.parametrize("word", ["in", "true", "null", "for", "return"])
def test_reserved_words_are_not_ids(word: str) -> None:
    issue = _one_issue(_workflow(_node(id=word)))
    assert issue.loc == ("nodes", 0, "id")
    assert "reserved word" in issue.message


@pytest.mark.parametrize("name", ["1flow", "-x", "", "a/b", "w\n", "x" * 201])
def test_invalid_workflow_names(name: str) -> None:
    issue = _one_issue({"name": name, "nodes": [_node()]})
    assert issue.loc == ("name",)
    assert "not a valid name" in issue.message


@pytest.mark.parametrize("name", ["flow", "claims.intake-v2", "_x", "x" * 200])
def test_valid_workflow_names(name: str) -> None:
    assert parse_spec({"name": name, "nodes": [_node()]}).name == name


# --- policies -----------------------------------------------------------------------------


def test_policy_fields_are_parsed() -> None:
    node = parse_spec(
        _workflow(
            _node(
                retry={"max_attempts": 5, "initial_backoff": "2s", "max_backoff": "1m"},
                timeout="PT1M30S",
                queue="gpu.high:1",
                priority=-1000,
                concurrency={"key": '"crm:"  +  input.tenant', "limit": 2},
            )
        )
    ).nodes[0]
    assert node.retry == RetryPolicy(max_attempts=5, initial_backoff=2.0, max_backoff=60.0)
    assert node.timeout == 90.0
    assert node.queue == "gpu.high:1"
    assert node.priority == -1000
    assert node.concurrency is not None
    assert node.concurrency.key == '"crm:" + input.tenant'


@pytest.mark.parametrize(
    ("policy", "loc"),
    [
        ({"retry": {"max_attempts": 0}}, ("retry", "max_attempts")),
        ({"retry": {"multiplier": 0.5}}, ("retry", "multiplier")),
        ({"retry": {"jitter": 1.5}}, ("retry", "jitter")),
        ({"retry": {"initial_backoff": "-1s"}}, ("retry", "initial_backoff")),
        ({"timeout": -1}, ("timeout",)),
        ({"timeout": "-5s"}, ("timeout",)),
        ({"timeout": 0}, ("timeout",)),
        ({"timeout": "inf"}, ("timeout",)),
        ({"priority": 1001}, ("priority",)),
        ({"priority": -1001}, ("priority",)),
        ({"queue": "bad queue"}, ("queue",)),
        ({"queue": ""}, ("queue",)),
        ({"queue": "q" * 101}, ("queue",)),
        ({"concurrency": {"key": "input.t", "limit": 0}}, ("concurrency", "limit")),
    ],
)
def test_policy_constraints(policy: dict[str, Any], loc: tuple[str, ...]) -> None:
    issue = _one_issue(_workflow(_node(**policy)))
    assert issue.loc == ("nodes", 0, *loc)
    assert issue.node == "a"


def test_max_backoff_shorter_than_initial_backoff() -> None:
    issue = _one_issue(_workflow(_node(retry={"initial_backoff": "10s", "max_backoff": "5s"})))
    assert issue.loc == ("nodes", 0, "retry")
    assert issue.message == "max_backoff (5s) is shorter than initial_backoff (10s)"


def test_an_exception_cannot_be_retried_and_never_retried() -> None:
    retry = {"retry_on": ["Timeout", "IOError"], "never_retry_on": ["IOError", "KeyError"]}
    issue = _one_issue(_workflow(_node(retry=retry)))
    assert issue.message == "IOError cannot be in both retry_on and never_retry_on"


def test_workflow_defaults_have_the_same_constraints() -> None:
    issue = _one_issue(_workflow(defaults={"timeout": 0, "priority": 5}))
    assert issue.loc == ("defaults", "timeout")
    issue = _one_issue(_workflow(defaults={"concurrency": {"key": "x", "limit": 1}}))
    assert issue.code == "extra_forbidden", "concurrency is per node only"


def test_workflow_limits() -> None:
    assert _one_issue(_workflow(max_parallel=0)).loc == ("max_parallel",)
    assert _one_issue(_workflow(deadline="0s")).loc == ("deadline",)
    assert parse_spec(_workflow(deadline="1h")).deadline == 3600.0


# --- effective policies -------------------------------------------------------------------


def test_builtin_policies_apply_without_node_or_defaults() -> None:
    effective = effective_policies(NodePolicies(), NodeDefaults())
    assert effective.retry == RetryPolicy()
    assert effective.retry.max_attempts == 1
    assert effective.timeout is None
    assert effective.queue == DEFAULT_QUEUE == "default"
    assert effective.priority == 0
    assert effective.concurrency is None


def test_workflow_defaults_beat_builtin() -> None:
    defaults = NodeDefaults(retry=RetryPolicy(max_attempts=3), timeout=10, queue="q", priority=7)
    effective = effective_policies(NodePolicies(), defaults)
    assert effective.retry.max_attempts == 3
    assert (effective.timeout, effective.queue, effective.priority) == (10.0, "q", 7)


def test_node_policies_beat_workflow_defaults() -> None:
    defaults = NodeDefaults(retry=RetryPolicy(max_attempts=3), timeout=10, queue="q", priority=7)
    node = NodePolicies(retry=RetryPolicy(max_attempts=9), timeout=1, queue="n", priority=-3)
    effective = effective_policies(node, defaults)
    assert effective.retry.max_attempts == 9
    assert (effective.timeout, effective.queue, effective.priority) == (1.0, "n", -3)


def test_priority_zero_on_a_node_still_beats_defaults() -> None:
    effective = effective_policies(NodePolicies(priority=0), NodeDefaults(priority=7))
    assert effective.priority == 0


def test_a_node_retry_replaces_the_default_retry_as_a_whole() -> None:
    defaults = NodeDefaults(retry=RetryPolicy(max_attempts=3, initial_backoff=5))
    effective = effective_policies(NodePolicies(retry=RetryPolicy(max_attempts=2)), defaults)
    assert effective.retry == RetryPolicy(max_attempts=2)


def test_effective_policies_of_a_parsed_spec() -> None:
    spec = parse_spec(
        _workflow(
            _node(id="own", queue="fast"),
            _node(id="inherits"),
            defaults={"queue": "slow", "timeout": "30s"},
        )
    )
    own = effective_policies(spec.node("own"), spec.defaults)
    inherits = effective_policies(spec.node("inherits"), spec.defaults)
    assert (own.queue, own.timeout) == ("fast", 30.0)
    assert (inherits.queue, inherits.timeout) == ("slow", 30.0)


# --- triggers -----------------------------------------------------------------------------


def test_triggers_are_discriminated_by_kind() -> None:
    spec = parse_spec(
        _workflow(
            triggers=[
                {"kind": "schedule", "cron": "0 9 * * MON-FRI", "timezone": "Europe/Paris"},
                {"kind": "event", "event": "claim.created", "filter": "event.amount  >  10"},
                {"kind": "webhook", "path": "/hooks/claims", "secret_env": "HOOK_SECRET"},
            ]
        )
    )
    schedule, event, webhook = spec.triggers
    assert isinstance(schedule, ScheduleTrigger)
    assert schedule.timezone == "Europe/Paris"
    assert isinstance(event, EventTrigger)
    assert event.filter == "event.amount > 10"
    assert isinstance(webhook, WebhookTrigger)
    assert webhook.method == "POST"


@pytest.mark.parametrize("cron", ["61 * * * *", "* * *", "not cron", "* * 32 * *"])
def test_bad_cron(cron: str) -> None:
    issue = _one_issue(_workflow(triggers=[{"kind": "schedule", "cron": cron}]))
    assert issue.loc == ("triggers", 0, "cron"), "the union tag is not part of the location"
    assert f"invalid cron expression {cron!r}" in issue.message


@pytest.mark.parametrize("zone", ["Mars/Olympus", "CEST", ""])
def test_bad_timezone(zone: str) -> None:
    trigger = {"kind": "schedule", "cron": "* * * * *", "timezone": zone}
    issue = _one_issue(_workflow(triggers=[trigger]))
    assert issue.loc == ("triggers", 0, "timezone")
    assert "IANA name" in issue.message


@pytest.mark.parametrize("path", ["hooks", "/hooks?x=1", "/a b", ""])
def test_bad_webhook_path(path: str) -> None:
    issue = _one_issue(_workflow(triggers=[{"kind": "webhook", "path": path}]))
    assert issue.loc == ("triggers", 0, "path")


def test_webhook_method_and_unknown_trigger_kind() -> None:
    issue = _one_issue(_workflow(triggers=[{"kind": "webhook", "path": "/x", "method": "GET"}]))
    assert issue.loc == ("triggers", 0, "method")
    issue = _one_issue(_workflow(triggers=[{"kind": "email", "to": "x"}]))
    assert issue.loc == ("triggers", 0)
    assert "'schedule', 'event', 'webhook'" in issue.message


@pytest.mark.parametrize("secret", [{}, {"secret_env": None}])
def test_a_webhook_needs_secret_env(secret: dict[str, Any]) -> None:
    issue = _one_issue(_workflow(triggers=[{"kind": "webhook", "path": "/x", **secret}]))
    assert issue.loc == ("triggers", 0)
    assert issue.message == (
        "a webhook needs secret_env: the environment variable holding its signing secret"
    )


def test_a_webhook_tolerance_is_at_most_an_hour() -> None:
    trigger = {"kind": "webhook", "path": "/x", "secret_env": "S", "tolerance": "2h"}
    issue = _one_issue(_workflow(triggers=[trigger]))
    assert issue.loc == ("triggers", 0, "tolerance")
    assert issue.message.startswith("a webhook's tolerance is at most 1h (it is 2h)")
    hour = parse_spec(_workflow(triggers=[{**trigger, "tolerance": "1h"}])).triggers[0]
    assert isinstance(hour, WebhookTrigger)
    assert hour.tolerance == 3600


# --- canonical JSON and the version ---------------------------------------------------------


def test_canonical_json_leaves_defaults_out() -> None:
    spec = parse_spec(_workflow(_node(args={"x": 1})))
    assert spec_json(spec) == (
        '{"name":"w","nodes":[{"args":{"x":{"value":1}},"id":"a","kind":"task","task":"m:f"}]}'
    )


def test_writing_defaults_explicitly_changes_nothing() -> None:
    short = parse_spec(_workflow(_node()))
    explicit = parse_spec(
        {
            "name": "w",
            "description": "",
            "input_schema": {"type": "object"},
            "nodes": [
                _node(
                    kind="task",
                    description="",
                    after=[],
                    when=None,
                    join="none_failed",
                    args={},
                    retry=None,
                    timeout=None,
                )
            ],
            "outputs": {},
            "defaults": {},
            "max_parallel": None,
            "deadline": None,
            "triggers": [],
        }
    )
    assert spec_json(explicit) == spec_json(short)
    assert explicit.version == short.version


def test_a_map_keeps_its_kind_in_canonical_json() -> None:
    node = {"id": "m", "kind": "map", "task": "m:g", "items": "input.xs", "item_arg": "x"}
    data = json.loads(spec_json(parse_spec(_workflow(node))))
    assert data["nodes"][0]["kind"] == "map"


def test_equal_durations_give_the_same_version() -> None:
    a = parse_spec(_workflow(_node(timeout="60s", retry={"max_backoff": "PT5M"})))
    b = parse_spec(_workflow(_node(timeout="1m", retry={"max_backoff": 300})))
    c = parse_spec(_workflow(_node(timeout=60.0, retry={"max_backoff": "5m"})))
    assert a.version == b.version == c.version
    assert a.version != parse_spec(_workflow(_node(timeout="61s"))).version


def test_key_order_is_irrelevant() -> None:
    forward = {
        "name": "w",
        "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
        "nodes": [_node(args={"p": 1, "q": "${{ input.x }}"}, retry={"max_attempts": 2})],
        "outputs": {"first": "nodes.a.output", "second": "input.x"},
    }
    backward = {
        "outputs": {"second": "input.x", "first": "nodes.a.output"},
        "nodes": [
            {"retry": {"max_attempts": 2}, "args": {"q": "${{ input.x }}", "p": 1}, "task": "m:f"}
            | {"id": "a"}
        ],
        "input_schema": {"properties": {"x": {"type": "integer"}}, "type": "object"},
        "name": "w",
    }
    assert parse_spec(forward).version == parse_spec(backward).version


def test_expression_layout_is_irrelevant() -> None:
    a = parse_spec(_workflow(_node(when="input.x  >  1", args={"y": "${{ input.y }}"})))
    b = parse_spec(_workflow(_node(when="\n  input.x >\n 1\n", args={"y": {"expr": "input.y"}})))
    assert a.version == b.version


def test_different_definitions_have_different_versions() -> None:
    base = parse_spec(_workflow(_node(args={"x": 1})))
    assert base.version != parse_spec(_workflow(_node(args={"x": 2}))).version
    assert base.version != parse_spec(_workflow(_node(args={"x": "${{ 1 }}"}))).version
    assert base.version != parse_spec(_workflow(_node(args={"x": 1}, task="m:g"))).version


def test_version_is_a_sha256_hex_digest() -> None:
    version = parse_spec(_workflow()).version
    assert len(version) == 64
    assert int(version, 16) >= 0


def test_round_trip_through_canonical_json_keeps_the_version() -> None:
    spec = parse_spec(
        {
            "name": "claims",
            "description": "Intake ✓",
            "input_schema": {"type": "object", "properties": {"doc": {"type": "string"}}},
            "nodes": [
                _node(
                    id="extract",
                    args={"doc": "${{ input.doc }}", "mode": "fast", "opts": {"value": {"a": 1}}},
                    retry={"max_attempts": 3, "retry_on": ["TimeoutError"]},
                    timeout="30s",
                ),
                {
                    "id": "each",
                    "kind": "map",
                    "task": "m:g",
                    "items": "nodes.extract.output.lines",
                    "item_arg": "line",
                    "max_parallel": 4,
                    "when": "size(nodes.extract.output.lines) > 0",
                },
                _node(id="done", after=["each"], join="all_done", priority=3),
            ],
            "outputs": {"lines": "nodes.each.output"},
            "defaults": {"queue": "claims", "timeout": "5m"},
            "max_parallel": 8,
            "deadline": "P1D",
            "triggers": [{"kind": "schedule", "cron": "0 * * * *", "input": {"doc": "x"}}],
        }
    )
    text = spec_json(spec)
    again = parse_spec(json.loads(text))
    assert again == spec
    assert spec_json(again) == text
    assert again.version == spec.version


def test_spec_json_is_the_canonical_json_of_the_data_and_leaves_the_spec_alone() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "number", "default": 2.0}}}
    args = {"x": 1.0, "y": {"value": [0.5, 3.0, {"z": -4.0}, -0.0]}, "big": 1e300}
    spec = parse_spec({**_workflow(_node(args=args, timeout=30)), "input_schema": schema})
    text = spec_json(spec)
    assert text == canonical_json(canonical_data(spec))
    assert '"x":{"value":1}' in text
    assert '[0.5,3,{"z":-4},0]' in text
    assert "1e+300" in text
    # integral floats are written as ints in the text only: the spec keeps its values
    properties: Any = spec.input_schema["properties"]
    assert type(properties["n"]["default"]) is float
    node: Any = spec.nodes[0]
    assert type(node.args["x"].value) is float


def test_canonical_json_text_rules() -> None:
    assert canonical_json({"b": 1.0, "a": [2.5, 3.0], "é": "✓"}) == '{"a":[2.5,3],"b":1,"é":"✓"}'
    with pytest.raises(ValueError, match="JSON"):
        canonical_json({"x": float("nan")})


# --- durations are bounded ------------------------------------------------------------------

_TOO_LONG = "999999999999999999s"


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        (_workflow(_node(timeout=_TOO_LONG)), ("nodes", 0, "timeout")),
        (_workflow(_node(timeout=1e18)), ("nodes", 0, "timeout")),
        (_workflow(_node(timeout="366d")), ("nodes", 0, "timeout")),
        (_workflow(_node(retry={"initial_backoff": _TOO_LONG})),
         ("nodes", 0, "retry", "initial_backoff")),
        (_workflow(_node(retry={"max_backoff": _TOO_LONG})), ("nodes", 0, "retry", "max_backoff")),
        (_workflow(_node(rate_limit={"key": "x", "limit": 1, "per": _TOO_LONG})),
         ("nodes", 0, "rate_limit", "per")),
        (_workflow(_node(circuit={"name": "c", "cooldown": _TOO_LONG})),
         ("nodes", 0, "circuit", "cooldown")),
        (_workflow(defaults={"timeout": _TOO_LONG}), ("defaults", "timeout")),
        (_workflow(deadline=_TOO_LONG), ("deadline",)),
        (_workflow({"id": "a", "kind": "approval", "title": "t", "timeout": _TOO_LONG}),
         ("nodes", 0, "timeout")),
        (_workflow({"id": "a", "kind": "signal", "signal": "s", "timeout": _TOO_LONG}),
         ("nodes", 0, "timeout")),
        (_workflow({"id": "a", "kind": "timer", "duration": _TOO_LONG}), ("nodes", 0, "duration")),
        (_workflow(notify=[{"kind": "webhook", "url": "https://x.example/", "backoff": _TOO_LONG}]),
         ("notify", 0, "webhook", "backoff")),
    ],
)  # fmt: skip
def test_durations_longer_than_365_days_are_refused(
    data: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    issue = _one_issue(data)
    assert issue.loc[: len(loc)] == loc
    assert "at most 365 days" in issue.message
    assert issue.message.startswith("duration ")


def test_a_refused_duration_is_quoted_as_written() -> None:
    issue = _one_issue(_workflow(_node(timeout=_TOO_LONG)))
    assert issue.node == "a"
    assert issue.message == (
        f"duration '{_TOO_LONG}' is too long: keel accepts at most 365 days ('365d')"
    )


def test_a_refused_number_of_seconds_is_also_given_in_days() -> None:
    issue = _one_issue(_workflow(_node(timeout=400 * 86400)))
    assert issue.message == (
        "duration 34560000 s (400 days) is too long: keel accepts at most 365 days ('365d')"
    )


def test_365_days_is_accepted() -> None:
    spec = parse_spec(_workflow(_node(timeout="365d"), deadline="P52W"))
    assert spec.nodes[0].timeout == 365 * 86400.0
    assert spec.deadline == 52 * 7 * 86400.0
