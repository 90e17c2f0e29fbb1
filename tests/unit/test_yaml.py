"""YAML authoring: same model as Python, positions on every error, no silent overwrites."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from keel.authoring.loading import load_all, load_workflow
from keel.authoring.yaml_source import dump_yaml, load_yaml, read_documents, spec_from_document
from keel.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FIXTURES = ROOT / "tests" / "fixtures"


def _issues(path: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_yaml(path)
    return [str(issue) for issue in caught.value.issues]


def test_python_and_yaml_forms_of_onboarding_have_the_same_version() -> None:
    from_yaml = load_workflow(str(EXAMPLES / "onboarding.yaml")).spec
    from_python = load_workflow(str(EXAMPLES / "onboarding.py")).spec
    assert from_yaml.version == from_python.version
    assert from_yaml == from_python


def test_broken_yaml_reports_every_problem_with_line_and_column() -> None:
    issues = _issues(FIXTURES / "broken.yaml")
    source = str(FIXTURES / "broken.yaml")
    assert f"{source}:7:14: node 'fetch', timeout: Input should be greater than 0" in issues
    assert any(
        line.startswith(f"{source}:12:27: node 'parse', retry.max_attempts") for line in issues
    )
    assert f"{source}:13:5: node 'parse', colour: unknown field 'colour'" in issues
    # what is sound in the broken nodes is checked too
    assert any(line.startswith(f"{source}:6:10: node 'fetch', args.s.expr: expression does not "
                               "parse") for line in issues)  # fmt: skip
    assert any(line.startswith(f"{source}:11:12: node 'parse', args.obj.expr: "
                               "'nodes.fetch.outptu'") for line in issues)  # fmt: skip
    assert len(issues) == 5


def test_semantic_errors_carry_positions_too(tmp_path: Path) -> None:
    issues = _issues(FIXTURES / "cyclic.yaml")
    source = str(FIXTURES / "cyclic.yaml")
    assert any(
        line.startswith(f"{source}:3:5: node 'a': dependency cycle: a -> b -> c -> a")
        for line in issues
    ), issues
    assert any(
        line.startswith(f"{source}:12:11: node 'c', when:") and "unknown node 'ghost'" in line
        for line in issues
    ), issues


def test_unparseable_expression_is_located_at_its_value(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(
        "name: f\nnodes:\n  - id: a\n    task: json:dumps\n    args:\n      obj: ${{ input.x + }}\n"
    )
    issues = _issues(path)
    assert len(issues) == 1
    assert issues[0].startswith(f"{path}:6:12: node 'a', args.obj.expr: expression does not parse")


def test_duplicate_keys_are_errors_not_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: d\nnodes:\n  - id: a\n    task: json:dumps\n    task: json:loads\n")
    issues = _issues(path)
    assert issues == [f"{path}:5:5: nodes.0.task: duplicate key 'task'"]


def test_yaml_syntax_error_has_position(tmp_path: Path) -> None:
    path = tmp_path / "syntax.yaml"
    path.write_text("name: s\nnodes:\n  - id: a\n    task: [unclosed\n")
    issues = _issues(path)
    assert len(issues) == 1
    assert issues[0].startswith(f"{path}:5:1: YAML syntax error")


def test_unresolvable_task_reported_when_resolving(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    path.write_text("name: m\nnodes:\n  - id: a\n    task: no_such_module_xyz:run\n")
    assert load_yaml(path)  # structure alone is valid
    with pytest.raises(SpecError) as caught:
        load_yaml(path, resolve_tasks=True)
    (issue,) = caught.value.issues
    assert (issue.line, issue.column) == (4, 11)
    assert "cannot import module 'no_such_module_xyz'" in issue.message


def test_several_documents_are_several_workflows(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        "name: one\nnodes: [{id: a, task: 'json:dumps'}]\n---\n"
        "name: two\nnodes: [{id: b, task: 'json:dumps'}]\n"
    )
    assert [item.spec.name for item in load_all(str(path))] == ["one", "two"]
    assert load_workflow(f"{path}:two").spec.name == "two"


def test_dump_then_load_keeps_the_version(tmp_path: Path) -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec = load_workflow(str(EXAMPLES / "claims.py")).spec
    finally:
        sys.path.remove(str(EXAMPLES))
    (document,) = read_documents(dump_yaml(spec), "dumped.yaml")
    assert spec_from_document(document).version == spec.version


def test_literal_that_looks_like_an_argument_form_survives_a_dump(tmp_path: Path) -> None:
    path = tmp_path / "lit.yaml"
    path.write_text(
        "name: lit\nnodes:\n  - id: a\n    task: json:dumps\n    args:\n"
        "      obj: {value: {expr: not-an-expression}}\n"
    )
    (spec,) = load_yaml(path)
    (document,) = read_documents(dump_yaml(spec), "again.yaml")
    assert spec_from_document(document) == spec


def test_triggers_survive_a_dump(tmp_path: Path) -> None:
    path = tmp_path / "trig.yaml"
    path.write_text(
        "name: trig\nnodes: [{id: a, task: 'json:dumps'}]\n"
        "triggers:\n  - kind: schedule\n    cron: '0 9 * * 1-5'\n    timezone: Europe/Paris\n"
    )
    (spec,) = load_yaml(path)
    (document,) = read_documents(dump_yaml(spec), "again.yaml")
    assert spec_from_document(document) == spec


def test_bad_argument_form_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "arg.yaml"
    path.write_text(
        "name: a\nnodes:\n  - id: a\n    task: json:dumps\n    args:\n      obj: {expr: 3}\n"
    )
    issues = _issues(path)
    assert issues == [f"{path}:6:19: node 'a', args.obj.expr: Input should be a valid string"]


def test_a_timeout_longer_than_365_days_is_refused_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(
        "name: f\nnodes:\n  - id: a\n    task: json:dumps\n    timeout: 999999999999999999s\n"
    )
    assert _issues(path) == [
        f"{path}:5:14: node 'a', timeout: duration '999999999999999999s' is too long: "
        "keel accepts at most 365 days ('365d')"
    ]
