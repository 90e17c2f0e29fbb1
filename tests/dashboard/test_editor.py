"""The workflow editor: the check locates every problem as a deploy finds it (and a YAML
syntax error too), a valid text gets its graph, version and diff; a deploy makes a new
current version by the signed-in name, which the next run uses; only admins edit."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from typing import Any

import pytest

from keel.authoring.yaml_source import load_yaml_text
from keel.runtime.operations.control import start_run
from keel.runtime.operations.deployed import deployed
from keel.server.dashboard import definition_check
from keel.server.dashboard.definition_start import TEMPLATES
from keel.server.dashboard.rendering import fragment
from keel.server.dashboard.sessions import COOKIE, Viewer, csrf_for
from keel.server.identities import Identity
from tests.dashboard.conftest import Ui, csrf_of
from tests.processes import ROOT

STARTERS = ROOT / "keel" / "server" / "dashboard" / "starters"
_TEXTAREA = re.compile(r'<textarea id="definition"[^>]*>\n(.*?)</textarea>', re.S)


def editor_text(ui: Ui, query: str) -> str:
    """The text the editor starts from (as the browser shows it)."""
    answer = ui.clients["admin"].get(f"/ui/editor?{query}")
    assert answer.status_code == 200, answer.text
    found = _TEXTAREA.search(answer.text)
    assert found, "the editor has no text area"
    return html.unescape(found.group(1))


def check(ui: Ui, text: str) -> dict[str, Any]:
    client = ui.clients["admin"]
    csrf = csrf_of(client.get("/ui/editor").text)
    answer = client.post("/ui/editor/check", data={"definition": text},
                         headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def position_of(text: str, fragment_text: str) -> tuple[int, int]:
    """The 1-based line and column where ``fragment_text`` starts in ``text``."""
    before = text[: text.index(fragment_text)]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def test_the_editor_starts_from_the_deployed_definition_checked_and_current(ui: Ui) -> None:
    answer = ui.clients["admin"].get("/ui/editor?workflow=review")
    assert answer.status_code == 200
    text = editor_text(ui, "workflow=review")
    (spec,) = load_yaml_text(text, "page")
    assert spec.version == ui.store.deployments("review")[-1].version  # the very definition
    assert "the current version already" in answer.text
    assert "deployed from review.yaml" in answer.text
    assert ui.clients["admin"].get("/ui/editor?workflow=nothing").status_code == 404


def test_every_template_passes_keel_validate_and_opens_valid_in_the_editor(ui: Ui) -> None:
    files = [str(STARTERS / f"{name}.yaml") for name in TEMPLATES]
    validated = subprocess.run([sys.executable, "-m", "keel", "validate", *files],
                               capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.count("is valid") == len(TEMPLATES)
    for name in TEMPLATES:
        text = editor_text(ui, f"template={name}")
        assert text == (STARTERS / f"{name}.yaml").read_text(encoding="utf-8")
        body = check(ui, text)
        assert body["valid"] is True, body["html"]
    assert ui.clients["admin"].get("/ui/editor?template=nothing").status_code == 404


def test_an_unknown_field_is_located_where_it_was_typed(ui: Ui) -> None:
    text = editor_text(ui, "workflow=review").replace("after:", "afer:")
    body = check(ui, text)
    line, column = position_of(text, "afer:")
    assert body["valid"] is False
    assert body["elements"] is None
    shown = html.unescape(body["html"])
    assert f'data-line="{line}" data-column="{column}"' in shown
    assert f"line {line}, column {column}</button>: node 'book', afer: unknown field" in shown


def test_a_reference_to_a_missing_node_is_located_and_named(ui: Ui) -> None:
    text = editor_text(ui, "template=chain").replace("nodes.fetch.output", "nodes.fetc.output")
    body = check(ui, text)
    line, _ = position_of(text, "${{ nodes.fetc.output }}")
    shown = html.unescape(body["html"])
    assert body["problems"] == 1
    assert f'data-line="{line}"' in shown
    assert "unknown node 'fetc' (did you mean 'fetch'?)" in shown


def test_a_yaml_syntax_error_is_located(ui: Ui) -> None:
    text = "name: broken\nnodes:\n  - id: a\n    task: [tests.server.serverflows:book\n  - id: b\n"
    body = check(ui, text)
    shown = html.unescape(body["html"])
    assert body["valid"] is False
    assert "YAML syntax error" in shown
    found = re.search(r'data-line="(\d+)" data-column="(\d+)"', shown)
    assert found, shown
    assert int(found.group(1)) == 5  # where PyYAML found the list unclosed
    assert "Traceback" not in shown


def test_a_failing_check_says_so_without_a_traceback(
    ui: Ui, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("/secret/path leaked?")

    monkeypatch.setattr(definition_check, "checked_definition", broken)
    body = check(ui, "name: x\n")
    assert body["valid"] is False
    assert "the check failed (RuntimeError)" in body["html"]
    assert "Traceback" not in body["html"]
    assert "/secret/path" not in body["html"]


def test_a_valid_edit_gets_its_graph_version_and_the_diff_of_the_changed_line(ui: Ui) -> None:
    current = ui.store.deployments("review")[-1].version
    text = editor_text(ui, "workflow=review").replace("Check the amount", "Check the total")
    (edited,) = load_yaml_text(text, "edited")
    body = check(ui, text)
    assert body["valid"] is True, body["html"]
    nodes = {e["data"]["id"]: e for e in body["elements"] if "source" not in e["data"]}
    assert set(nodes) == {"check", "ping", "book"}
    assert all(set(n["position"]) == {"x", "y"} for n in nodes.values())
    assert {(e["data"]["source"], e["data"]["target"])
            for e in body["elements"] if "source" in e["data"]} == {("check", "book")}  # fmt: skip
    shown = html.unescape(body["html"])
    assert f'version <code title="{edited.version}">{edited.version[:12]}</code>' in shown
    assert f'replaces the current <code title="{current}">' in shown
    assert '<span class="diff-del">-  title: Check the amount\n</span>' in shown
    assert '<span class="diff-add">+  title: Check the total\n</span>' in shown
    assert shown.count('class="diff-add"') == 1  # the changed line alone
    assert f'<span class="diff-file">+++ review {edited.version[:12]} (edited)' in shown


def test_a_task_module_the_server_cannot_import_is_a_warning_not_a_problem(ui: Ui) -> None:
    text = "name: elsewhere\nnodes:\n  - id: a\n    task: no_such_module_here:run\n"
    body = check(ui, text)
    assert body["valid"] is True
    shown = html.unescape(body["html"])
    assert "⚠ <button" in shown
    assert "cannot import module 'no_such_module_here'" in shown
    assert 'data-line="4" data-column="11"' in shown


def test_deploying_makes_a_new_current_version_by_the_signed_in_name(ui: Ui) -> None:
    client = ui.clients["admin"]
    before = ui.store.deployments("review")
    text = editor_text(ui, "workflow=review").replace("Check the amount", "Check the total")
    (edited,) = load_yaml_text(text, "edited")
    csrf = csrf_of(client.get("/ui/editor").text)
    answer = client.post("/ui/editor/deploy", data={"definition": text, "csrf": csrf})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui/workflows/review"
    assert "keel_flash" in answer.headers["set-cookie"]
    landed = client.get("/ui/workflows/review")  # the message is shown there, once
    assert 'class="flash-message' in landed.text
    assert "flash-message" not in client.get("/ui/workflows/review").text
    after = ui.store.deployments("review")
    assert len(after) == len(before) + 1
    made = after[-1]
    assert (made.version, made.deployed_by, made.source) == (edited.version, "admin-1", "editor")
    assert made.deployed_at > before[-1].deployed_at
    # a run started after the deploy runs the new version
    spec = ui.store.load_spec(deployed(ui.store, "review").version)
    run = start_run(ui.store, spec, {"amount": 5})
    assert run.spec_version == edited.version != before[-1].version


def test_an_invalid_deploy_keeps_the_text_and_shows_the_problems(ui: Ui) -> None:
    client = ui.clients["admin"]
    before = len(ui.store.deployments())
    text = editor_text(ui, "workflow=review").replace("after:", "afer:")
    csrf = csrf_of(client.get("/ui/editor").text)
    answer = client.post("/ui/editor/deploy", data={"definition": text, "csrf": csrf})
    assert answer.status_code == 422
    assert "unknown field &#39;afer&#39;" in answer.text
    found = _TEXTAREA.search(answer.text)
    assert found
    assert html.unescape(found.group(1)) == text
    assert len(ui.store.deployments()) == before


@pytest.mark.parametrize("role", ["viewer", "approver", "operator"])
def test_other_roles_may_not_edit_and_see_no_editor_link(ui: Ui, role: str) -> None:
    client = ui.clients[role]
    before = len(ui.store.deployments())
    assert client.get("/ui/editor").status_code == 403
    csrf = csrf_for(client.cookies[COOKIE])  # the session's own: the role is what refuses
    for path in ("/ui/editor/check", "/ui/editor/deploy"):
        text = editor_text(ui, "template=chain")
        refused = client.post(path, data={"definition": text, "csrf": csrf})
        assert refused.status_code == 403
        assert f"has role {role}, which may not" in refused.text
    assert len(ui.store.deployments()) == before
    seen = fragment("base.html", viewer=Viewer(Identity(f"{role}-1", role), "t"), path="/ui/")
    assert 'href="/ui/editor"' not in seen
    admin = fragment("base.html", viewer=Viewer(Identity("admin-1", "admin"), "t"), path="/ui/")
    assert 'href="/ui/editor"' in admin


def test_the_page_draws_the_graph_of_the_text_it_starts_with(ui: Ui) -> None:
    page = ui.clients["admin"].get("/ui/editor?template=fan_out").text
    found = re.search(r'<script type="application/json" id="graph-elements">(.*?)</script>', page)
    assert found
    elements = json.loads(found.group(1))
    assert [e["data"]["id"] for e in elements if "position" in e] == ["fetch", "each", "summarise"]
    assert 'id="deploy">' in page  # valid: the deploy button is not disabled


STEPS_YAML = """name: hooks
nodes:
  - id: fetch
    kind: http
    method: POST
    url: "https://api.example.com/claims/${{ input.id }}"
    headers: {Authorization: "Bearer ${{ secrets.API_TOKEN }}"}
  - id: notify
    kind: shell
    command: [echo, "${{ nodes.fetch.output.status }}"]
"""


def test_built_in_steps_check_valid_and_draw_as_their_kind(ui: Ui) -> None:
    body = check(ui, STEPS_YAML)
    assert body["valid"] is True, body["html"]
    shown = html.unescape(body["html"])
    assert "keel.steps" not in shown  # keel's own tasks: not a module the server looks for
    assert "⚠" not in shown
    nodes = {e["data"]["id"]: e["data"] for e in body["elements"] if "source" not in e["data"]}
    assert set(nodes) == {"fetch", "notify"}
    drawn = json.dumps(nodes)
    assert "keel.steps" not in drawn
    assert "POST api.example.com/claims/${{ input.id }}" in drawn
    edges = {(e["data"]["source"], e["data"]["target"]) for e in body["elements"]
             if "source" in e["data"]}  # fmt: skip
    assert edges == {("fetch", "notify")}


def test_a_secret_misspelt_in_a_step_is_located(ui: Ui) -> None:
    text = STEPS_YAML.replace("secrets.API_TOKEN", "secret.API_TOKEN")
    body = check(ui, text)
    assert body["valid"] is False
    shown = html.unescape(body["html"])
    assert "unknown name 'secret'" in shown
    assert "did you mean 'secrets'?" in shown
    line, _ = position_of(text, "headers:")
    assert f'data-line="{line}"' in shown
