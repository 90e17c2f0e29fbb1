"""The run page in a browser, over ``keel serve --with-worker``: a run's nodes change
state in the graph and the steps table without a reload when an approval is decided
elsewhere; a failed run is retried from a node through its dialog, whose preview lists
what runs again; a viewer gets no buttons, and a forged post is refused.

Nothing waits on a clock: each step waits, with Playwright's polling, for what the page
must come to show."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx2
import pytest

from tests.browser.conftest import Served

if TYPE_CHECKING:  # playwright missing: the fixtures skip (or fail in CI), not the import
    from playwright.sync_api import Page

#: a document without the ``total`` the intake wants: its run waits for a review
UNCHECKED = {"document": {"uri": "doc-1", "text": "number: 7", "kind": "invoice"}}
#: an empty document: ``load`` fails, and so does the run
EMPTY = {"document": {"uri": "doc-2", "text": "  ", "kind": "invoice"}}


def api(served: Served, role: str, method: str, path: str, body: Any = None) -> Any:
    answer = httpx2.request(method, f"{served.base_url}{path}", json=body, trust_env=False,
                            headers=served.headers(role), timeout=10.0)  # fmt: skip
    assert answer.status_code < 300, answer.text
    return answer.json()


def started(served: Served, run_input: Any) -> str:
    run: dict[str, Any] = api(served, "operator", "POST", "/runs",
                              {"workflow": "document_intake", "input": run_input})  # fmt: skip
    return str(run["id"])


def sign_in(page: Page, served: Served, role: str, next_path: str) -> None:
    page.goto(f"{served.base_url}/ui/sign-in?next={next_path}")
    page.fill("input[name=token]", served.tokens[role])
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_path}")


@pytest.mark.slow
def test_nodes_turn_green_without_a_reload_when_the_review_is_approved(
    served: Served, page: Page
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    run_id = started(served, UNCHECKED)
    sign_in(page, served, "viewer", f"/ui/runs/{run_id}")
    page.wait_for_selector("#step-review .state.waiting")  # the worker got it there
    page.wait_for_function("() => keelRun.state('review') === 'waiting'")
    page.wait_for_selector("#live[data-state=live]")
    page.evaluate("() => { window.notReloaded = true; }")

    api(served, "approver", "POST", f"/runs/{run_id}/approvals/review/approve",
        {"data": {"note": "total is on page 2"}})  # fmt: skip

    page.wait_for_selector("#step-index .state.succeeded")
    page.wait_for_function("() => keelRun.state('index') === 'succeeded'")
    page.wait_for_selector("#run-status.succeeded")
    assert page.evaluate("() => window.notReloaded") is True
    assert errors == []


@pytest.mark.slow
def test_retry_a_failed_run_from_a_node_through_its_dialog(served: Served, page: Page) -> None:
    run_id = started(served, EMPTY)
    sign_in(page, served, "operator", f"/ui/runs/{run_id}")
    page.wait_for_selector("#run-status.failed")  # reloaded by the live stream's patch

    page.click('[data-dialog="dialog-retry-node"]')
    page.fill("#dialog-retry-node input[name=node]", "load")
    page.wait_for_selector("#dialog-retry-node .preview-nodes li")
    again = page.inner_text("#dialog-retry-node .preview-nodes")
    assert again.split() == ["load", "extract_fields", "check_fields", "review", "index"]
    page.fill("#dialog-retry-node input[name=reason]", "the file was re-uploaded")
    page.click("#dialog-retry-node button[type=submit]")

    page.wait_for_selector(".flash-message")
    assert "retried from load" in page.inner_text(".flash-message")
    history = api(served, "viewer", "GET", f"/runs/{run_id}/history")["events"]
    retried = [e["data"] for e in history if e["kind"] == "run_retried"]
    assert retried == [{"by": "ui-operator", "nodes": again.split(),
                        "reason": "the file was re-uploaded"}]  # fmt: skip


@pytest.mark.slow
def test_a_viewer_sees_no_action_and_a_forged_post_is_refused(served: Served, page: Page) -> None:
    run_id = started(served, UNCHECKED)
    sign_in(page, served, "viewer", f"/ui/runs/{run_id}")
    page.wait_for_selector("#run-graph[data-drawn]")

    assert page.query_selector_all("[data-dialog], dialog") == []
    status = page.evaluate(
        """async (url) => (await fetch(url, {method: "POST", credentials: "same-origin",
             headers: {"Content-Type": "application/x-www-form-urlencoded"},
             body: "reason=forged"})).status""",
        f"/ui/runs/{run_id}/cancel",
    )
    assert status == 403
    assert api(served, "viewer", "GET", f"/runs/{run_id}")["status"] != "cancelled"
