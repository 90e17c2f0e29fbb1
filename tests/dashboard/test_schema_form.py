"""An approval's form from its JSON Schema: the controls drawn for each kind of field,
the data a submitted form stands for, and each problem named at its field."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from keel.server.dashboard.schema_form import check, form_fields, read_form, walk


class Address(BaseModel):
    city: str = Field(min_length=2)
    zip: str | None = None


class Claim(BaseModel):
    reason: str = Field(min_length=3, max_length=500)
    amount: int = Field(ge=1, le=100)
    rate: float = 0.5
    kind: Literal["car", "home"] = "car"
    tags: list[Literal["red", "blue"]] = Field(default_factory=list, max_length=1)
    address: Address
    seen: int | None = None
    extra: dict[str, int] = {}


SCHEMA = Claim.model_json_schema()  # nested models as $ref, optionals as anyOf with null


def drawn(schema: dict[str, Any]) -> dict[str, tuple[str, bool, dict[str, str]]]:
    return {f.name: (f.control, f.required, f.attrs) for f in walk(form_fields(schema))}


def test_each_kind_of_field_gets_its_control_with_its_constraints() -> None:
    fields = drawn(SCHEMA)
    assert fields["data.reason"] == ("textarea", True, {"required": "", "minlength": "3",
                                                       "maxlength": "500"})  # fmt: skip
    number = {"required": "", "type": "number", "step": "1", "min": "1", "max": "100"}
    assert fields["data.amount"] == ("number", True, number)
    assert fields["data.rate"] == ("number", False, {"type": "number", "step": "any"})
    assert fields["data.kind"][0] == "select"
    assert fields["data.tags"][0] == "choices"
    assert fields["data.address"][:2] == ("fieldset", True)  # a $ref, followed
    assert fields["data.address.city"] == ("text", True, {"required": "", "type": "text",
                                                         "minlength": "2"})  # fmt: skip
    assert fields["data.seen"] == ("number", False, {"type": "number", "step": "1"})
    assert fields["data.extra"][0] == "json"


def test_defaults_fill_the_form_before_anything_is_typed() -> None:
    initial = {f.name: f.initial for f in walk(form_fields(SCHEMA))}
    assert initial["data.rate"] == ("0.5",)
    assert initial["data.kind"] == ('"car"',)
    assert initial["data.extra"] == ("{}",)
    assert initial["data.amount"] == ()


def test_a_form_without_fields_is_one_json_text_area() -> None:
    (whole,) = form_fields({"type": "object"})
    assert (whole.name, whole.control) == ("data", "json")
    reading = read_form([whole], {"data": ['{"any": [1, 2]}']})
    assert reading.data == {"any": [1, 2]}
    assert read_form([whole], {}).data == {}


def test_a_submitted_form_is_read_as_typed_data_and_empty_controls_are_not_given() -> None:
    fields = form_fields(SCHEMA)
    reading = read_form(fields, {
        "data.reason": ["because"], "data.amount": ["7"], "data.rate": [""],
        "data.kind": ['"home"'], "data.tags": ['"blue"'], "data.address.city": ["Oslo"],
        "data.address.zip": [""], "data.extra": ['{"a": 1}'],
    })  # fmt: skip
    assert reading.errors == {}
    assert reading.data == {"reason": "because", "amount": 7, "kind": "home", "tags": ["blue"],
                            "address": {"city": "Oslo"}, "extra": {"a": 1}}  # fmt: skip
    assert check(SCHEMA, fields, reading.data) == {}


@pytest.mark.parametrize(
    ("submitted", "field", "message"),
    [
        ({"data.amount": ["seven"]}, "data.amount", "must be a number"),
        ({"data.amount": ["7.5"]}, "data.amount", "must be a whole number"),
        ({"data.kind": ['"boat"']}, "data.kind", "choose one of the choices shown"),
        ({"data.tags": ['"green"']}, "data.tags", "choose from the choices shown"),
        ({"data.extra": ["{"]}, "data.extra", "not valid JSON"),
    ],
)  # fmt: skip
def test_a_value_not_of_its_type_is_a_problem_of_its_field(
    submitted: dict[str, list[str]], field: str, message: str
) -> None:
    reading = read_form(form_fields(SCHEMA), submitted)
    assert reading.errors[field].startswith(message)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"amount": 0}, {"data.amount": "must be at least 1"}),
        ({"reason": "no"}, {"data.reason": "must be at least 3 characters"}),
        ({"tags": ["red", "blue"]}, {"data.tags": "choose at most 1"}),
        ({"address": {}}, {"data.address.city": "this field is required"}),
        ({"address": {"city": "X"}}, {"data.address.city": "must be at least 2 characters"}),
        ({"extra": {"a": "x"}}, {"data.extra": "'x' is not of type 'integer'"}),
    ],
)  # fmt: skip
def test_each_problem_is_named_at_its_field(data: dict[str, Any], expected: dict[str, str]) -> None:
    base = {"reason": "fine", "amount": 5, "address": {"city": "Oslo"}}
    assert check(SCHEMA, form_fields(SCHEMA), {**base, **data}) == expected


def test_every_missing_required_field_is_named() -> None:
    found = check(SCHEMA, form_fields(SCHEMA), {})
    assert found == {"data.reason": "this field is required",
                     "data.amount": "this field is required",
                     "data.address": "this field is required"}  # fmt: skip


def test_formats_the_form_draws_are_checked() -> None:
    on, to = {"type": "string", "format": "date"}, {"type": "string", "format": "email"}
    schema = {"type": "object", "properties": {"on": on, "to": to}}
    fields = form_fields(schema)
    assert [f.attrs["type"] for f in fields] == ["date", "email"]
    assert check(schema, fields, {"on": "2026-02-30", "to": "nobody"}) == {
        "data.on": "must be a date (YYYY-MM-DD)",
        "data.to": "must be an email address",
    }
    assert check(schema, fields, {"on": "2026-02-28", "to": "a@b.example"}) == {}


def test_a_pattern_is_searched_for_as_json_schema_does_even_where_html_anchors_it() -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "[0-9]"}}}
    (code,) = form_fields(schema)
    assert code.attrs["pattern"] == ".*(?:[0-9]).*"
    assert check(schema, [code], {"code": "ab1cd"}) == {}
    assert check(schema, [code], {"code": "abcd"}) == {"data.code": "must match the pattern [0-9]"}


def test_a_field_name_with_a_dot_cannot_be_mistaken_for_a_nested_one() -> None:
    schema = {"type": "object", "properties": {"a.b": {"type": "string"},
                                               "a": {"type": "object", "properties": {
                                                   "b": {"type": "string"}}}}}  # fmt: skip
    names = [f.name for f in walk(form_fields(schema))]
    assert names == ["data.a~1b", "data.a", "data.a.b"]
    reading = read_form(form_fields(schema), {"data.a~1b": ["x"], "data.a.b": ["y"]})
    assert reading.data == {"a.b": "x", "a": {"b": "y"}}
