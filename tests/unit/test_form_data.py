"""Data for a form (an approval's form, a signal's payload schema) holds only the fields
the form declares: a misspelt field would otherwise be kept while the field it meant is
left empty or filled with its default, and nobody would notice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

import keel
from keel.errors import InputError
from keel.runtime.client import Client
from keel.runtime.operations.inputs import check_data
from keel.store.sqlite import SQLiteStore


class Note(BaseModel):
    note: str = ""


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")

    note: str = ""


class Address(BaseModel):
    city: str


class Shipping(BaseModel):
    address: Address


@keel.workflow
def noted() -> Any:
    first = keel.approval("Review", id="review", form=Note)
    return keel.signal("go", id="go", schema=Note, after=[first])


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    store = SQLiteStore(tmp_path / "keel.db")
    yield Client(store=store)
    store.close()


def test_an_unknown_field_in_approval_data_is_refused_and_nothing_is_recorded(
    client: Client,
) -> None:
    run_id = client.start(noted)
    before = client.store.history(run_id)
    with pytest.raises(InputError) as refused:
        client.approve(run_id, "review", data={"nope": "x"})
    message = str(refused.value)
    assert "the data for approval 'review' does not match its schema" in message
    assert "data has no field 'nope' (fields: note)" in message
    assert client.store.history(run_id) == before

    client.approve(run_id, "review", data={"note": "fine"})  # the right field is taken


def test_an_unknown_field_in_a_signal_payload_is_refused(client: Client) -> None:
    run_id = client.start(noted)
    client.approve(run_id, "review", data={})
    before = client.store.history(run_id)
    with pytest.raises(InputError, match=r"data has no field 'notes' \(fields: note\)"):
        client.signal(run_id, "go", {"notes": "x"})
    assert client.store.history(run_id) == before


@pytest.mark.parametrize(
    ("schema", "data", "expected"),
    [
        # a JSON Schema form that does not say extra fields are welcome
        ({"type": "object", "properties": {"a": {}, "b": {}}}, {"a": 1, "c": 2},
         "data has no field 'c' (fields: a, b)"),
        ({"type": "object", "properties": {"a": {}}, "additionalProperties": False},
         {"z": 1}, "data has no field 'z' (fields: a)"),
        # every unknown field is named, nested ones with where they are
        (Shipping.model_json_schema(), {"address": {"city": "x", "zip": "1"}, "to": "y"},
         "data.address has no field 'zip' (fields: city)"),
        (Shipping.model_json_schema(), {"address": {"city": "x", "zip": "1"}, "to": "y"},
         "data has no field 'to' (fields: address)"),
        ({"type": "object", "properties": {}}, {"a": 1}, "data has no field 'a' (fields: none)"),
    ],
)  # fmt: skip
def test_every_field_a_form_does_not_declare_is_named(
    schema: dict[str, Any], data: Any, expected: str
) -> None:
    with pytest.raises(InputError) as refused:
        check_data(schema, data, "approval 'review'")
    assert expected in str(refused.value)


@pytest.mark.parametrize(
    ("schema", "data"),
    [
        (Loose.model_json_schema(), {"note": "x", "extra": 1}),
        ({"type": "object", "properties": {"a": {}}, "additionalProperties": True}, {"b": 1}),
        ({"type": "object", "properties": {"a": {}}, "additionalProperties": {"type": "integer"}},
         {"b": 1}),
        ({"type": "object", "properties": {"a": {}}, "patternProperties": {"^x_": {}}},
         {"x_b": 1}),
        ({"type": "object"}, {"anything": 1}),  # a form without declared fields
        ({}, {"anything": 1}),
    ],
)  # fmt: skip
def test_a_form_that_admits_other_fields_takes_them(schema: dict[str, Any], data: Any) -> None:
    check_data(schema, data, "approval 'review'")
