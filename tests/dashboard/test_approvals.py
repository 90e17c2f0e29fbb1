"""The approvals inbox: the tabs hold what they say, the form is drawn from the
approval's JSON Schema and checked again on the server (a problem named at its field,
every value kept), a decision is recorded as the signed-in viewer, and only those who
may decide an approval see its buttons or get a post through."""

from __future__ import annotations

import json
import re
import time
from html import unescape
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient

from keel.authoring.yaml_source import load_yaml_text
from keel.engine.events import ApprovalDecided
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.operations.interventions import approve
from keel.server.dashboard.flash import COOKIE as FLASH
from keel.server.dashboard.pages.approvals import _follower
from keel.server.dashboard.sessions import Viewer
from keel.server.identities import Identity, create_token
from keel.spec.model import WorkflowSpec
from tests.dashboard.conftest import Ui, csrf_of, sign_in

FORMS_YAML = """
name: forms
input_schema:
  type: object
  properties:
    claim: {type: string}
    amount: {type: number}
nodes:
  - id: intake
    kind: approval
    title: Check the claim
    description: "claim ${{ input.claim }} asks for ${{ input.amount }}"
    assignees: [finance]
    timeout: 1h
    form:
      type: object
      required: [reason, amount, address]
      properties:
        reason: {type: string, title: Reason, minLength: 3, maxLength: 40, pattern: "^[A-Z]"}
        amount: {type: integer, minimum: 1, maximum: 100, description: in euros}
        rate: {type: number, default: 0.5}
        urgent: {type: boolean}
        kind: {enum: [car, home]}
        tags: {type: array, items: {enum: [red, blue, green]}, maxItems: 2}
        due_on: {type: string, format: date}
        contact: {type: string, format: email}
        address:
          type: object
          required: [city]
          properties:
            city: {type: string, minLength: 2}
            zip: {type: string}
        lines: {type: array, items: {type: object}}
"""

TABS_YAML = """
name: tabs
nodes:
  - {id: by_name, kind: approval, title: Named, assignees: [approver-1]}
  - {id: by_role, kind: approval, title: By role, role: approver}
  - {id: other, kind: approval, title: Legal's, assignees: [legal]}
"""


def deploy(ui: Ui, text: str) -> WorkflowSpec:
    (spec,) = load_yaml_text(text, "test.yaml")
    ui.store.deploy([(spec, "test.yaml")], 2.0, by="setup")
    return spec


def started(ui: Ui, text: str, run_input: Any = None, clock: Any = None) -> str:
    return start_run(ui.store, deploy(ui, text), run_input or {}, clock=clock).id


class Controls(HTMLParser):
    """The form controls of a page by name (a name's checkboxes and options together)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: dict[str, list[tuple[str, dict[str, str | None]]]] = {}
        self.options: dict[str, list[str]] = {}
        self._select: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        seen = dict(attrs)
        name = seen.get("name")
        if tag in ("input", "select", "textarea") and name:
            self.found.setdefault(name, []).append((tag, seen))
            self._select = name if tag == "select" else self._select
        elif tag == "option" and self._select is not None:
            self.options.setdefault(self._select, []).append(seen.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None

    def one(self, name: str) -> tuple[str, dict[str, str | None]]:
        (found,) = self.found[name]
        return found


def listed(html: str) -> set[tuple[str, str]]:
    """The approvals a page lists, as (run id, node)."""
    return set(re.findall(r'<article id="approval-([0-9a-f-]{8,})-([\w-]+)"', html))


def article(html: str, run_id: str, node: str) -> str:
    """The part of a page that shows one approval."""
    start = html.index(f'<article id="approval-{run_id}-{node}"')
    return html[start : html.index("</article>", start)]


def field_error(html: str, name: str) -> str:
    """The message next to field ``name`` (its wrapper's error span)."""
    at = html.index(f'data-name="{name}"')
    found = re.search(r'<span class="field-error"[^>]*>([^<]*)</span>', html[at:])
    assert found is not None
    return found.group(1)


def decided(ui: Ui, run_id: str, node: str) -> list[ApprovalDecided]:
    return [e.event for e in ui.store.history(run_id)
            if isinstance(e.event, ApprovalDecided) and e.event.node == node]  # fmt: skip


def post(ui: Ui, role: str, path: str, form: dict[str, Any]) -> Any:
    client = ui.clients[role]
    csrf = csrf_of(client.get("/ui/approvals").text)
    return client.post(path, data={**form, "csrf": csrf})


def test_the_tabs_hold_mine_my_groups_and_all(ui: Ui) -> None:
    run = started(ui, TABS_YAML)
    client = ui.clients["approver"]  # approver-1, role approver, in finance

    mine = client.get("/ui/approvals?tab=mine").text
    assert listed(mine) == {(run, "by_name")}
    groups = client.get("/ui/approvals?tab=groups").text
    assert listed(groups) == {(run, "by_role"), (ui.seeded.waiting, "check"),
                              (ui.seeded.paused, "check")}  # fmt: skip
    every = client.get("/ui/approvals?tab=all").text
    assert listed(every) == listed(mine) | listed(groups) | {(run, "other")}
    for tab, count in (("mine", 1), ("groups", 3), ("all", 5)):  # counts from the same read
        assert re.search(rf'data-tab="{tab}"[^>]*>[^<]*<span class="count">{count}</span>', every)
    # without a tab: where the viewer's work is (their own first)
    assert listed(client.get("/ui/approvals").text) == listed(mine)
    # a viewer is in no group: only "all" holds anything
    viewer = ui.clients["viewer"]
    assert listed(viewer.get("/ui/approvals?tab=groups").text) == set()
    assert listed(viewer.get("/ui/approvals").text) == listed(every)


def test_an_approval_shows_its_run_description_due_time_and_assignees(ui: Ui) -> None:
    past = FakeClock(time.time() - 7200)  # opened two hours ago, due after one: overdue
    run = started(ui, FORMS_YAML, {"claim": "C-7", "amount": 120}, clock=past)
    html = ui.clients["viewer"].get("/ui/approvals?tab=all").text
    shown = article(html, run, "intake")
    assert "Check the claim" in shown
    assert f'href="/ui/runs/{run}"' in shown
    assert "claim C-7 asks for 120" in shown  # filled in from the run's data
    assert "finance" in shown
    assert shown.count("<time") == 2  # since and due
    assert 'class="card approval overdue"' in shown
    seeded = article(html, ui.seeded.waiting, "check")
    assert "no due time" in seeded
    assert "overdue" not in seeded


def test_the_form_is_drawn_from_the_json_schema(ui: Ui) -> None:
    run = started(ui, FORMS_YAML, {"claim": "C-1", "amount": 5})
    html = article(ui.clients["approver"].get("/ui/approvals?tab=groups").text, run, "intake")
    page = Controls(html)

    tag, reason = page.one("data.reason")
    assert tag == "input"
    assert (reason["type"], reason["minlength"], reason["maxlength"]) == ("text", "3", "40")
    assert reason["pattern"] == ".*(?:^[A-Z]).*"  # JSON Schema searches; HTML anchors
    assert "required" in reason
    tag, amount = page.one("data.amount")
    assert (amount["type"], amount["step"], amount["min"], amount["max"]) == (
        "number", "1", "1", "100")  # fmt: skip
    assert "required" in amount
    _, rate = page.one("data.rate")
    assert (rate["step"], rate["value"]) == ("any", "0.5")
    assert "required" not in rate
    assert page.one("data.urgent")[1]["type"] == "checkbox"
    assert page.one("data.kind")[0] == "select"
    assert page.options["data.kind"] == ["", '"car"', '"home"']
    assert [a["value"] for _, a in page.found["data.tags"]] == ['"red"', '"blue"', '"green"']
    assert page.one("data.due_on")[1]["type"] == "date"
    assert page.one("data.contact")[1]["type"] == "email"
    _, city = page.one("data.address.city")  # a nested object: a fieldset of its own
    assert ("required" in city, city["minlength"]) == (True, "2")
    assert page.one("data.lines")[0] == "textarea"  # anything else: JSON
    assert page.one("comment")[0] == "textarea"
    assert "<legend>address" in html


FORM_OK = {"data.reason": "Fine claim", "data.amount": "40", "data.kind": '"car"',
           "data.tags": ['"red"', '"green"'], "data.urgent": "true",
           "data.address.city": "Oslo", "data.due_on": "2026-03-01"}  # fmt: skip


def test_a_value_the_schema_refuses_is_named_at_its_field_and_every_value_kept(ui: Ui) -> None:
    run = started(ui, FORMS_YAML, {"claim": "C-1", "amount": 5})
    before = ui.store.get_run(run).last_seq
    sent = {**FORM_OK, "data.amount": "500", "data.lines": "[{}]", "comment": "my notes",
            "tab": "groups"}  # fmt: skip
    answer = post(ui, "approver", f"/ui/approvals/{run}/intake/approve", sent)

    assert answer.status_code == 422
    html = article(answer.text, run, "intake")
    assert field_error(html, "data.amount") == "must be at most 100"
    assert field_error(html, "data.reason") == ""
    page = Controls(html)
    assert page.one("data.amount")[1]["value"] == "500"  # nothing typed is lost
    assert page.one("data.reason")[1]["value"] == "Fine claim"
    assert page.one("data.address.city")[1]["value"] == "Oslo"
    assert ["checked" in a for _, a in page.found["data.tags"]] == [
        True, False, True]  # fmt: skip
    assert "checked" in page.one("data.urgent")[1]
    assert ">[{}]</textarea>" in html
    assert ">my notes</textarea>" in html
    assert ui.store.get_run(run).last_seq == before  # nothing recorded


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"data.reason": "lower case"}, "data.reason", "must match the pattern ^[A-Z]"),
        ({"data.amount": "4.5"}, "data.amount", "must be a whole number"),
        ({"data.address.city": ""}, "data.address.city", "this field is required"),
        ({"data.due_on": "2026-02-30"}, "data.due_on", "must be a date (YYYY-MM-DD)"),
        ({"data.contact": "nobody"}, "data.contact", "must be an email address"),
        ({"data.tags": ['"red"', '"blue"', '"green"']}, "data.tags", "choose at most 2"),
        ({"data.lines": "[{"}, "data.lines", "not valid JSON"),
    ],
)  # fmt: skip
def test_each_kind_of_problem_is_named_at_its_field(
    ui: Ui, change: dict[str, Any], field: str, message: str
) -> None:
    run = started(ui, FORMS_YAML, {"claim": "C-1", "amount": 5})
    answer = post(ui, "approver", f"/ui/approvals/{run}/intake/approve", {**FORM_OK, **change})
    assert answer.status_code == 422
    assert field_error(answer.text, field).startswith(message)
    assert decided(ui, run, "intake") == []


def test_approving_records_the_form_data_as_the_signed_in_viewer(ui: Ui) -> None:
    run = started(ui, FORMS_YAML, {"claim": "C-1", "amount": 5})
    sent = {**FORM_OK, "comment": "looks right", "tab": "groups", "by": "mallory"}
    answer = post(ui, "approver", f"/ui/approvals/{run}/intake/approve", sent)

    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui/approvals?tab=groups"
    (decision,) = decided(ui, run, "intake")
    assert (decision.approved, decision.by, decision.comment) == (True, "approver-1", "looks right")
    assert decision.data == {"reason": "Fine claim", "amount": 40, "kind": "car",
                             "tags": ["red", "green"], "urgent": True, "rate": 0.5,
                             "address": {"city": "Oslo"}, "due_on": "2026-03-01"}  # fmt: skip
    inbox = ui.clients["approver"].get(answer.headers["location"])
    assert f"approved Check the claim of run {run[:8]}" in inbox.text
    assert (run, "intake") not in listed(inbox.text)
    again = ui.clients["approver"].get("/ui/approvals?tab=groups")
    assert "approved Check the claim" not in again.text  # said once
    assert FLASH not in ui.clients["approver"].cookies


def test_approving_without_a_form_and_rejecting(ui: Ui) -> None:
    waiting, paused = ui.seeded.waiting, ui.seeded.paused
    answer = post(ui, "approver", f"/ui/approvals/{waiting}/check/approve", {"comment": "ok"})
    assert answer.status_code == 303
    (decision,) = decided(ui, waiting, "check")
    assert (decision.approved, decision.by, decision.data) == (True, "approver-1", None)

    answer = post(ui, "admin", f"/ui/approvals/{paused}/check/reject", {"comment": "no"})
    assert answer.status_code == 303
    (decision,) = decided(ui, paused, "check")
    assert (decision.approved, decision.by, decision.comment) == (False, "admin-1", "no")
    inbox = ui.clients["admin"].get(answer.headers["location"]).text
    assert f"rejected Check the amount of run {paused[:8]}" in inbox


def test_an_approval_decided_meanwhile_leads_back_to_the_inbox_saying_so(ui: Ui) -> None:
    waiting = ui.seeded.waiting
    approve(ui.store, waiting, "check", by="someone-else")
    answer = post(ui, "approver", f"/ui/approvals/{waiting}/check/approve", {})
    assert answer.status_code == 303
    inbox = ui.clients["approver"].get(answer.headers["location"]).text
    assert "is not waiting for a decision any more" in inbox
    assert [d.by for d in decided(ui, waiting, "check")] == ["someone-else"]


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_a_role_that_may_not_decide_sees_no_buttons_and_a_forged_post_gets_403(
    ui: Ui, role: str
) -> None:
    run = started(ui, FORMS_YAML, {"claim": "C-1", "amount": 5})
    html = ui.clients[role].get("/ui/approvals?tab=all").text
    assert (run, "intake") in listed(html)
    assert 'class="decide"' not in html
    assert "/approve" not in html
    assert "/reject" not in html
    assert ">Approve</button>" not in html
    assert f"your role ({role}) may not decide approvals" in html
    assert "data.reason" in Controls(html).found  # the form, read-only
    assert re.search(r'<fieldset class="readonly" disabled>', html)

    for action in ("approve", "reject"):
        answer = post(ui, role, f"/ui/approvals/{run}/intake/{action}", FORM_OK)
        assert answer.status_code == 403
        assert role in answer.text
    assert decided(ui, run, "intake") == []


def test_an_approver_outside_the_assignees_is_refused(ui: Ui) -> None:
    secret, _ = create_token(ui.store, "outsider", "approver", groups=("legal",))
    client = TestClient(ui.clients["approver"].app, follow_redirects=False)
    with client:
        sign_in(client, secret)
        html = client.get("/ui/approvals?tab=all").text
        assert (ui.seeded.waiting, "check") in listed(html)
        assert "it is assigned to finance" in html
        assert ">Approve</button>" not in html
        csrf = csrf_of(html)
        for action in ("approve", "reject"):
            answer = client.post(f"/ui/approvals/{ui.seeded.waiting}/check/{action}",
                                 data={"csrf": csrf})  # fmt: skip
            assert answer.status_code == 403
            assert "'outsider' may not decide approval 'check'" in unescape(answer.text)
    assert decided(ui, ui.seeded.waiting, "check") == []


def test_an_unknown_run_is_a_404_page(ui: Ui) -> None:
    answer = post(ui, "approver", "/ui/approvals/ffffffffffff/check/approve", {})
    assert answer.status_code == 404
    assert "<h1>404</h1>" in answer.text


def events(follow: Any, changes: Any) -> list[tuple[str, Any]]:
    return [(event.name, event.data) for event in follow(changes)]


def test_the_live_stream_sends_the_list_when_an_approval_comes_or_goes(ui: Ui) -> None:
    served = ui.clients["approver"].app.state.service
    viewer = Viewer(Identity("approver-1", "approver", ("finance",)), "csrf-token")
    follow = _follower(served, viewer, "groups")

    ((name, data),) = events(follow, None)  # a reconnect: the whole list
    assert name == "approvals"
    ids = [item["id"] for item in data["items"]]
    assert ids == [f"approval-{ui.seeded.waiting}-check", f"approval-{ui.seeded.paused}-check"]
    assert 'value="csrf-token"' in data["items"][0]["html"]  # the viewer's own forms
    assert 'data-tab="groups"' in data["tabs"]
    changes = ui.store.runs_changed(None, 10)
    assert events(follow, changes) == []  # nothing the inbox shows changed

    approve(ui.store, ui.seeded.waiting, "check", by="elsewhere")
    ((name, data),) = events(follow, ui.store.runs_changed(None, 10))
    assert [item["id"] for item in data["items"]] == [f"approval-{ui.seeded.paused}-check"]
    assert '<span class="count">1</span>' in data["tabs"]

    run = started(ui, TABS_YAML)
    ((name, data),) = events(follow, ui.store.runs_changed(None, 10))
    assert f"approval-{run}-by_role" in [item["id"] for item in data["items"]]
    assert f"approval-{run}-other" not in [item["id"] for item in data["items"]]


def test_the_stream_brings_a_reconnecting_page_up_to_date(ui: Ui) -> None:
    client = ui.clients["approver"]
    client.app.state.closing.set()  # the stream ends after catching up
    (change,) = ui.store.runs_changed(None, 1)
    from keel.server.dashboard.live import position_text

    answer = client.get("/ui/approvals/live?tab=groups",
                        headers={"Last-Event-ID": position_text(change.position)})  # fmt: skip
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in answer.text.split("\n\n") if f.startswith("event: approvals")]
    (frame,) = frames
    data = json.loads(frame.split("data: ", 1)[1])
    assert {item["id"] for item in data["items"]} == {
        f"approval-{ui.seeded.waiting}-check", f"approval-{ui.seeded.paused}-check"}  # fmt: skip


def test_the_page_follows_its_tab_live_and_loads_its_script(ui: Ui) -> None:
    html = ui.clients["approver"].get("/ui/approvals?tab=groups").text
    live = re.search(r'data-live="([^"]+)"', html)
    assert live is not None
    assert live.group(1).startswith("/ui/approvals/live?")
    assert "tab=groups" in live.group(1)
    assert "from=" in live.group(1)
    assert "/ui/static/approvals.js?v=" in html
