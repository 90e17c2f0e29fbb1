"""Validation of a workflow's schedules as a set: several schedules are each named, no
name is used twice, and a schedule's input fits the workflow's input schema; a lone
unnamed schedule keeps going by the workflow's name."""

from __future__ import annotations

from typing import Any

import pytest

from keel.errors import SpecError, SpecIssue
from keel.runtime.triggers.schedules import schedule_names
from keel.spec import parse_spec
from keel.spec.validate import parse_and_validate

SCHEMA = {"type": "object", "required": ["day"], "properties": {
    "day": {"type": "string"},
    "items": {"type": "array", "items": {"type": "integer"}}}}  # fmt: skip


def issues(*schedules: dict[str, Any]) -> list[SpecIssue]:
    triggers = [{"kind": "schedule", "cron": "0 * * * *", "input": {"day": "mon"}, **schedule}
                for schedule in schedules]  # fmt: skip
    data = {"name": "wf", "input_schema": SCHEMA, "nodes": [{"id": "a", "task": "m:f"}],
            "triggers": triggers}  # fmt: skip
    with pytest.raises(SpecError) as found:
        parse_and_validate(data)
    return found.value.issues


def test_a_lone_unnamed_schedule_goes_by_the_workflows_name() -> None:
    data = {"name": "wf", "nodes": [{"id": "a", "task": "m:f"}],
            "triggers": [{"kind": "schedule", "cron": "0 * * * *"}]}  # fmt: skip
    assert schedule_names(parse_and_validate(data)) == {0: "wf"}


def test_several_schedules_are_each_named() -> None:
    (issue,) = issues({"name": "wf"}, {})  # the second would have been 'wf#2'
    assert issue.loc == ("triggers", 1, "name")
    assert issue.code == "unnamed_schedule"
    assert "2 schedules: give each a name" in issue.message


@pytest.mark.parametrize("name", ["nightly", "wf"])
def test_a_schedule_name_is_used_once(name: str) -> None:
    (issue,) = issues({"name": name}, {"name": "other"}, {"name": name})
    assert issue.loc == ("triggers", 2, "name")
    assert issue.code == "duplicate_schedule"
    assert issue.message == (
        f"two schedules are named '{name}': each schedule needs a name of its own"
    )


def test_a_schedules_input_fits_the_input_schema() -> None:
    found = issues({"name": "a", "input": {}}, {"name": "b", "input": {"day": 3}},
                   {"name": "c", "input": {"day": "mon", "items": [1, "x"]}})  # fmt: skip
    said = {(issue.loc, issue.message) for issue in found}
    prefix = "the schedule's input does not fit the workflow's input schema: "
    assert said == {
        (("triggers", 0, "input"), prefix + "'day' is a required property"),
        (("triggers", 1, "input", "day"), prefix + "input.day: 3 is not of type 'string'"),
        (("triggers", 2, "input", "items", 1),
         prefix + "input.items[1]: 'x' is not of type 'integer'"),
    }  # fmt: skip
    assert {issue.code for issue in found} == {"input_mismatch"}


def test_a_deployed_spec_from_before_keeps_its_numbered_names() -> None:
    """Not validated again when read from the store: its schedules keep their names."""
    triggers = [{"kind": "schedule", "cron": "0 * * * *"},
                {"kind": "schedule", "cron": "5 * * * *"}]  # fmt: skip
    spec = parse_spec({"name": "wf", "nodes": [{"id": "a", "task": "m:f"}], "triggers": triggers})
    assert schedule_names(spec) == {0: "wf", 1: "wf#2"}
