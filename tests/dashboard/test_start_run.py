"""Starting a run from a workflow's page: the form is drawn from the input schema of the
version shown (nested objects as fieldsets), a wrong value is refused at its field with
every value kept and nothing started, a good one starts a run by the signed-in name and
leads to its page; the whole input may be given as JSON instead, a key starts at most
one run, and only those who may act see the form or get a post through."""

from __future__ import annotations

from typing import Any

import pytest

from keel.authoring.yaml_source import load_yaml_text
from tests.dashboard.conftest import Ui
from tests.dashboard.ops_html import Node, parse
from tests.server.serverflows import REVIEW_YAML

START = "/ui/workflows/review/start"

NESTED_YAML = """
name: nested
input_schema:
  type: object
  required: [claim]
  properties:
    claim:
      type: object
      required: [id, amount]
      properties:
        id: {type: string, minLength: 2}
        amount: {type: integer, minimum: 1}
    note: {type: string}
  additionalProperties: false
nodes:
  - {id: check, kind: approval, title: Check}
"""


def deploy(ui: Ui, text: str) -> str:
    (spec,) = load_yaml_text(text, "test.yaml")
    ui.store.deploy([(spec, "test.yaml")], 2.0, by="setup")
    return spec.version


def runs_of(ui: Ui, workflow: str = "review") -> list[Any]:
    return ui.store.list_runs(workflow=workflow, limit=1000)


def start_form(ui: Ui, path: str = "/ui/workflows/review", role: str = "operator") -> Node:
    answer = ui.clients[role].get(path)
    assert answer.status_code == 200, answer.text
    return parse(answer.text).by_id("wf-start")


def post(ui: Ui, form: dict[str, str], path: str = START, role: str = "operator") -> Any:
    return ui.clients[role].post(path, data={"csrf": ui.csrf(role), **form})


def field(section: Node, name: str) -> Node:
    """The wrapper of the field whose control is ``name``."""
    (found,) = section.find_all(data_name=name)
    return found


def test_the_form_has_a_field_per_input_property_and_the_current_version(ui: Ui) -> None:
    section = start_form(ui)
    assert section.tag == "details"
    assert "open" not in section.attrs  # folded until opened
    (form,) = section.find_all("form")
    assert form.attrs["action"] == START
    assert "schema-form" in form.classes()
    assert form.find_all("input", name="csrf")
    (amount,) = section.find_all("input", name="data.amount")
    assert amount.attrs["type"] == "number"
    assert field(section, "data.amount").attrs["data-kind"] == "number"
    (version,) = section.find_all("select", name="version")
    (chosen,) = [o for o in version.find_all("option") if "selected" in o.attrs]
    assert chosen.attrs["value"] == ui.store.deployments("review")[-1].version
    assert section.find_all("textarea", name="input")  # the whole input as JSON instead
    assert section.find_all("input", name="key")


def test_a_nested_object_is_a_fieldset_of_its_fields(ui: Ui) -> None:
    deploy(ui, NESTED_YAML)
    section = start_form(ui, "/ui/workflows/nested")
    claim = field(section, "data.claim")
    assert claim.tag == "fieldset"
    inside = {n.attrs["name"]: n for n in claim.find_all("input")}
    assert set(inside) == {"data.claim.id", "data.claim.amount"}
    assert "required" in inside["data.claim.id"].attrs
    assert inside["data.claim.amount"].attrs["min"] == "1"
    assert section.find_all("input", name="data.note")


def test_a_wrong_value_is_refused_at_its_field_and_nothing_starts(ui: Ui) -> None:
    before = len(runs_of(ui))
    answer = post(ui, {"data.amount": "ten", "key": "k-1"})
    assert answer.status_code == 422, answer.text
    section = parse(answer.text).by_id("wf-start")
    assert "open" in section.attrs
    wrapper = field(section, "data.amount")
    assert wrapper.find_all("span", class_="field-error")[0].text == "must be a number"
    (amount,) = wrapper.find_all("input")
    assert amount.attrs["value"] == "ten"  # kept
    assert amount.attrs["aria-invalid"] == "true"
    (key,) = section.find_all("input", name="key")
    assert key.attrs["value"] == "k-1"
    assert len(runs_of(ui)) == before


def test_a_nested_value_the_schema_refuses_is_named_at_its_field(ui: Ui) -> None:
    deploy(ui, NESTED_YAML)
    answer = post(ui, {"data.claim.id": "C-1", "data.claim.amount": "0", "data.note": "hi"},
                  "/ui/workflows/nested/start")  # fmt: skip
    assert answer.status_code == 422, answer.text
    section = parse(answer.text).by_id("wf-start")
    error = field(section, "data.claim.amount").find_all("span", class_="field-error")[0]
    assert error.text == "must be at least 1"
    assert field(section, "data.claim.id").find_all("input")[0].attrs["value"] == "C-1"
    assert field(section, "data.note").find_all("input")[0].attrs["value"] == "hi"
    assert runs_of(ui, "nested") == []


def test_a_good_value_starts_a_run_by_the_signed_in_name_and_leads_to_it(ui: Ui) -> None:
    before = {r.id for r in runs_of(ui)}
    answer = post(ui, {"data.amount": "12.5"})
    assert answer.status_code == 303, answer.text
    (run,) = [r for r in runs_of(ui) if r.id not in before]
    assert answer.headers["location"] == f"/ui/runs/{run.id}"
    assert run.started_by == "operator-1"
    assert run.input == {"amount": 12.5}
    assert run.spec_version == ui.store.deployments("review")[-1].version
    landed = ui.clients["operator"].get(answer.headers["location"])
    assert f"Started run {run.id[:8]} of review" in landed.text


def test_the_whole_input_may_be_given_as_json(ui: Ui) -> None:
    refused = post(ui, {"data.amount": "", "input": '{"amount": "ten"}'})
    assert refused.status_code == 422, refused.text
    section = parse(refused.text).by_id("wf-start")
    (box,) = section.find_all("textarea", name="input")
    assert box.text == '{"amount": "ten"}'
    assert section.by_id("start-input-error").text.startswith("amount: ")
    assert section.find_all("details", open="")  # shown open, where it was typed

    before = {r.id for r in runs_of(ui)}
    answer = post(ui, {"data.amount": "1", "input": '{"amount": 7}'})  # the JSON wins
    assert answer.status_code == 303, answer.text
    (run,) = [r for r in runs_of(ui) if r.id not in before]
    assert run.input == {"amount": 7}


def test_an_idempotency_key_starts_one_run(ui: Ui) -> None:
    first = post(ui, {"data.amount": "3", "key": "order-7"})
    again = post(ui, {"data.amount": "3", "key": "order-7"})
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert len([r for r in runs_of(ui) if r.input == {"amount": 3}]) == 1
    landed = ui.clients["operator"].get(again.headers["location"])
    assert "no new run was started" in landed.text

    other = post(ui, {"data.amount": "4", "key": "order-7"})  # the key, other input
    assert other.status_code == 422
    (problem,) = [n for n in parse(other.text).by_id("wf-start").find_all("p")
                  if "form-problem" in n.classes()]  # fmt: skip
    assert "other input" in problem.text
    bad = post(ui, {"data.amount": "4", "key": "clé"})
    assert bad.status_code == 422
    assert "printable ASCII" in parse(bad.text).by_id("start-key-error").text
    assert [r.input for r in runs_of(ui) if r.input == {"amount": 4}] == []


def test_the_form_of_another_version_starts_that_version(ui: Ui) -> None:
    first = ui.store.deployments("review")[-1].version
    with_total = "amount: {type: number}\n    total: {type: integer}"
    newer = deploy(ui, REVIEW_YAML.replace("amount: {type: number}", with_total))
    assert field(start_form(ui), "data.total")  # the current version's schema
    section = start_form(ui, f"/ui/workflows/review?version={first[:12]}")
    assert field(section, "data.amount")
    assert section.find_all(data_name="data.total") == []
    (version,) = section.find_all("select", name="version")
    assert [o.attrs["value"] for o in version.find_all("option") if "selected" in o.attrs] == [
        first
    ]
    assert {o.attrs["value"] for o in version.find_all("option")} == {first, newer}

    answer = post(ui, {"version": first, "data.amount": "2"})
    assert answer.status_code == 303, answer.text
    run = ui.store.get_run(answer.headers["location"].rsplit("/", 1)[1])
    assert (run.spec_version, run.input) == (first, {"amount": 2})
    # the newer version's schema refuses what the older takes: named at its field
    refused = post(ui, {"version": newer, "data.total": "2.5"})
    assert refused.status_code == 422
    assert "whole number" in field(parse(refused.text).by_id("wf-start"), "data.total").text


@pytest.mark.parametrize("role", ["viewer", "approver"])
def test_who_may_not_act_sees_no_form_and_a_forged_post_is_refused(ui: Ui, role: str) -> None:
    page = ui.clients[role].get("/ui/workflows/review")
    assert page.status_code == 200
    assert 'id="wf-start"' not in page.text
    assert "schema_form.js" not in page.text
    before = len(runs_of(ui))
    forged = post(ui, {"data.amount": "5"}, role=role)
    assert forged.status_code == 403
    assert len(runs_of(ui)) == before


def test_an_input_without_declared_fields_is_one_json_box(ui: Ui) -> None:
    deploy(ui, "name: free\nnodes:\n  - {id: check, kind: approval, title: Check}\n")
    section = start_form(ui, "/ui/workflows/free")
    assert field(section, "data").attrs["data-kind"] == "json"
    assert section.find_all("textarea", name="input") == []  # not offered twice
    answer = post(ui, {"data": '{"any": ["thing"]}'}, "/ui/workflows/free/start")
    assert answer.status_code == 303, answer.text
    (run,) = runs_of(ui, "free")
    assert run.input == {"any": ["thing"]}
