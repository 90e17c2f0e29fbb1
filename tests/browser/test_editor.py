"""The workflow editor in a browser: a typo typed is located as the text changes, a
click on the problem puts the caret there, the fix redraws the graph, and the deploy
makes the version the next run of the workflow uses.

Nothing waits on a clock: each step waits, with Playwright's polling, for what the
page must come to show."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx2
import pytest

from keel.authoring.yaml_source import load_yaml_text
from keel.server.dashboard.definition_start import template_text
from tests.browser.conftest import Served

if TYPE_CHECKING:  # playwright missing: the fixtures skip (or fail in CI), not the import
    from playwright.sync_api import Page

#: a fourth node for the chain template: the fixed text draws one more node
ARCHIVE = """
  - id: archive
    task: keel_starter:publish
    args:
      items: ${{ nodes.transform.output }}
"""


def sign_in(page: Page, served: Served, role: str, next_path: str) -> None:
    page.goto(f"{served.base_url}/ui/sign-in?next={next_path}")
    page.fill("input[name=token]", served.tokens[role])
    page.click("button[type=submit]")


def problems(page: Page) -> str:
    return page.inner_text("#check-result")


@pytest.mark.slow
def test_type_a_typo_see_it_located_fix_it_and_deploy_the_new_version(
    served: Served, page: Page
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, served, "admin", "/ui/editor?template=chain")
    page.wait_for_url("**/ui/editor?template=chain")
    page.wait_for_function("() => window.keelEditorGraph && keelEditorGraph.nodes().length === 3")
    text = template_text("chain")
    assert page.input_value("#definition") == text

    # Tab inserts two spaces at the caret (and the text is checked again)
    page.focus("#definition")
    page.evaluate("() => { const a = document.querySelector('#definition');"
                  " a.setSelectionRange(a.value.length, a.value.length); }")  # fmt: skip
    page.keyboard.press("Tab")
    assert page.input_value("#definition") == text + "  "

    # a typo: an unknown field, located by line and column; the deploy is refused
    typo = text.replace("retry:", "retyr:")
    page.fill("#definition", typo)
    line = typo[: typo.index("retyr:")].count("\n") + 1
    where = f"line {line}, column 5"
    page.wait_for_function(
        "(where) => document.querySelector('#check-result').innerText.includes(where)", arg=where
    )
    assert "unknown field 'retyr'" in problems(page)
    assert page.is_disabled("#deploy")
    assert page.evaluate("() => document.querySelector('#graph').classList.contains('stale')")
    assert page.inner_text("#gutter .bad") == str(line)
    # a click on the problem puts the caret on it
    page.click(f"#check-result .goto[data-line='{line}']")
    caret = page.evaluate("() => document.querySelector('#definition').selectionStart")
    assert caret == typo.index("retyr:")

    # the fix, with one node more: the graph is redrawn with four
    fixed = text.replace("    args:\n      items: ${{ nodes.transform.output }}\n",
                         "    args:\n      items: ${{ nodes.transform.output }}\n" + ARCHIVE,
                         1)  # fmt: skip
    (spec,) = load_yaml_text(fixed, "fixed")
    assert len(spec.nodes) == 4
    page.fill("#definition", fixed)
    page.wait_for_function("() => keelEditorGraph.nodes().length === 4")
    assert "chain is valid: 4 nodes" in problems(page)
    assert spec.version[:12] in problems(page)
    assert page.is_enabled("#deploy")
    # a narrow window: the text, the panel and the graph stack; the page never scrolls sideways
    page.set_viewport_size({"width": 400, "height": 800})
    page.wait_for_function("() => document.documentElement.scrollWidth <= window.innerWidth")

    # deploy: the workflow page follows; the API has the version, and a run uses it
    page.click("#deploy")
    page.wait_for_url("**/ui/workflows/chain")
    with httpx2.Client(base_url=served.base_url, trust_env=False, timeout=30.0) as client:
        found = client.get("/workflows/chain", headers=served.headers("admin"))
        assert found.status_code == 200, found.text
        assert found.json()["current_version"] == spec.version
        assert found.json()["deployments"][-1]["deployed_by"] == "ui-admin"
        started = client.post("/runs", json={"workflow": "chain", "input": {}},
                              headers=served.headers("admin"))  # fmt: skip
        assert started.status_code == 201, started.text
        assert started.json()["spec_version"] == spec.version
    assert errors == []
