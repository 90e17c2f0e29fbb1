"""The dashboard under its Content Security Policy, in a browser: the policy is on and
blocks an injected inline script, while what the pages' own files do still works (the
theme set before the page is drawn, a "more" button that goes once it has loaded, a
failed request said in a banner that can be dismissed, Enter on a step row); and a
page whose session ends elsewhere goes to the sign-in form instead of following its
stream.

Every browser test also fails on any violation of the policy (``page`` in conftest.py).
Nothing waits on a clock: each step waits, with Playwright's polling, for what the page
must come to show."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from keel.server.dashboard.live import SESSION_CHECK_SECONDS
from tests.browser.conftest import CSP_WORD, Served
from tests.browser.test_live import sign_in, waiting_run

if TYPE_CHECKING:  # playwright missing: the fixtures skip (or fail in CI), not the import
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

INJECT = """() => { const s = document.createElement("script");
  s.textContent = "window.injected = true"; document.body.append(s); }"""
#: a button of the kind a page draws: it goes once its request has succeeded
MORE = """(url) => { const b = document.createElement("button");
  b.id = "more"; b.type = "button"; b.textContent = "more";
  b.setAttribute("hx-get", url); b.setAttribute("hx-swap", "none");
  b.setAttribute("data-remove-after-request", "");
  document.getElementById("main").append(b); htmx.process(b); }"""


def test_the_policy_blocks_inline_script_and_the_pages_work_under_it(
    page: Page, served: Served, csp_violations: list[str]
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    run = waiting_run(served)
    sign_in(page, served, "operator", f"/ui/runs/{run}")
    page.wait_for_selector("#run-graph[data-drawn]")
    page.wait_for_selector("#live[data-state=live]")
    assert csp_violations == []

    with page.expect_console_message(lambda m: m.text.startswith(CSP_WORD)) as said:
        page.evaluate(INJECT)  # what a missed escape would let in
    assert "script-src" in said.value.text
    assert page.evaluate("() => window.injected === undefined")
    assert csp_violations == [said.value.text]
    csp_violations.clear()  # seen: the check at the end is for the pages' own

    # the theme: chosen with the button, set by app.js before the next page is drawn
    page.click("#theme")
    chosen = page.evaluate("() => document.documentElement.dataset.theme")
    assert chosen == "light"
    page.reload()
    assert page.evaluate("() => document.documentElement.dataset.theme") == chosen

    # a "more" button goes once its request succeeds, stays when it fails
    page.evaluate(MORE, "/ui/session")
    page.click("#more")
    page.wait_for_selector("#more", state="detached")

    # a failed request says the server's words in a banner, which can be dismissed
    assert page.is_hidden("#problem-banner")
    page.evaluate(MORE, "/ui/runs/no-such-run/steps")
    page.click("#more")
    banner = page.wait_for_selector("#problem-banner[role=alert]", state="visible")
    assert banner is not None
    said = banner.inner_text()
    assert "no-such-run" in said, said
    assert "404" in said, said
    assert page.is_visible("#more")  # failed: still there to try again
    page.click("#problem-banner [data-dismiss-problem]")
    page.wait_for_selector("#problem-banner", state="hidden")

    # Enter on a step row chooses it, as a click does (no trigger filter: no eval)
    row = page.wait_for_selector("#run-steps tbody tr[data-node]")
    assert row is not None
    node = row.get_attribute("data-node")
    row.focus()
    page.keyboard.press("Enter")
    assert page.wait_for_selector(f"#node-panel .node-head h2:text-is('{node}')")
    assert errors == []


def test_a_page_goes_to_the_sign_in_form_when_signed_out_in_another_tab(
    page: Page, served: Served
) -> None:
    """The stream checks its session every ``SESSION_CHECK_SECONDS`` and ends; the page
    then goes to the sign-in form, to come back where it was."""
    sign_in(page, served, "viewer", "/ui/runs")
    page.wait_for_selector("#live[data-state=live]")
    other = page.context.new_page()
    other.goto(f"{served.base_url}/ui/")
    other.click("form[action='/ui/sign-out'] button[type=submit]")
    other.wait_for_url("**/ui/sign-in")

    wait_ms = (SESSION_CHECK_SECONDS + 20) * 1000  # the check's period, and then some
    page.wait_for_url(re.compile(r"/ui/sign-in\?next=%2Fui%2Fruns$"), timeout=wait_ms)
    page.fill("input[name=token]", served.tokens["viewer"])
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/runs")
