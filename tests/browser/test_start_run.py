"""Starting and retrying runs in a browser, over ``keel serve --with-worker``: an operator
starts a run of the claims example from its workflow's page (an empty form is stopped in
the page) and lands on the run's page, which shows it to the end without a reload (a
claim settles in moments, so the page may land on it finished: test_run_page.py follows
nodes changing live); a failed saga run (the trip example, cars
sold out in Reykjavik) is retried from its failed node through the run page's dialog,
and the node is attempted again.

Nothing waits on a clock: each step waits, with Playwright's polling, for what the page
(or the run's history) must come to show."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import Served
from tests.browser.test_run_page import api, sign_in
from tests.processes import ROOT, until

if TYPE_CHECKING:  # playwright missing: the fixtures skip (or fail in CI), not the import
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

#: the claim the example's docstring runs (``-i claim=@examples/claim.json``)
CLAIM: dict[str, str] = json.loads((ROOT / "examples" / "claim.json").read_text())
RUN_PAGE = re.compile(r".*/ui/runs/[0-9a-f]{32}$")


def test_start_a_run_of_the_claims_example_and_watch_it_end_without_a_reload(
    served: Served, page: Page
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    workflows = api(served, "viewer", "GET", "/workflows")["workflows"]
    assert "claim" in {w["workflow"] for w in workflows}  # examples/claims.py's workflow
    sign_in(page, served, "operator", "/ui/workflows/claim")

    page.click("#wf-start summary")  # the form is folded until opened
    form = page.locator("#wf-start form")
    form.locator("button[type=submit]").click()  # empty: checked in the page, not sent
    page.wait_for_selector('#wf-start [data-name="data.claim.id"] .field-error:text("required")')
    assert page.url.endswith("/ui/workflows/claim")
    for key, value in CLAIM.items():  # the claim is an object: a fieldset of its fields
        form.locator(f'fieldset[data-name="data.claim"] [name="data.claim.{key}"]').fill(value)
    form.locator("button[type=submit]").click()

    page.wait_for_url(RUN_PAGE)
    page.evaluate("() => { window.notReloaded = true; }")
    run_id = page.url.rsplit("/", 1)[1]
    assert "Started run" in page.inner_text(".flash-message")
    page.wait_for_selector("#run-status.succeeded")
    run = api(served, "viewer", "GET", f"/runs/{run_id}")
    assert run["started_by"] == "ui-operator"
    assert {k: run["input"]["claim"][k] for k in ("id", "policy")} == {
        "id": CLAIM["id"], "policy": CLAIM["policy"]
    }  # fmt: skip
    states = {node["id"]: node["status"] for node in run["nodes"]}
    # fraud is unlikely for this claim: the escalation is skipped, every other node ran
    assert states.pop("escalate") == "skipped"
    assert set(states.values()) == {"succeeded"}
    page.wait_for_function(
        "(nodes) => nodes.every((n) => keelRun.state(n) === 'succeeded')", arg=list(states)
    )
    assert page.evaluate("() => keelRun.state('escalate')") == "skipped"
    assert page.evaluate("() => window.notReloaded") is True
    assert errors == []


def test_retry_a_failed_saga_run_from_the_failed_node(served: Served, page: Page) -> None:
    run: dict[str, Any] = api(served, "operator", "POST", "/runs",
                              {"workflow": "trip",
                               "input": {"traveller": "Ada", "city": "Reykjavik"}})  # fmt: skip
    run_id = run["id"]
    sign_in(page, served, "operator", f"/ui/runs/{run_id}")
    page.wait_for_selector("#run-status.failed")  # book_car sold out, bookings undone

    page.click('[data-dialog="dialog-retry-node"]')
    page.fill("#dialog-retry-node input[name=node]", "book_car")
    page.wait_for_selector("#dialog-retry-node .preview-nodes li")
    again = page.inner_text("#dialog-retry-node .preview-nodes").split()
    # book_car, and the bookings its failure's compensations cancelled (made again first)
    assert again == ["book_flight", "book_hotel", "book_car"]
    page.fill("#dialog-retry-node input[name=reason]", "a car was returned")
    page.click("#dialog-retry-node button[type=submit]")

    page.wait_for_selector(".flash-message")
    assert "retried from book_car" in page.inner_text(".flash-message")

    def attempted_again() -> list[dict[str, Any]] | None:
        events: list[dict[str, Any]] = api(served, "viewer", "GET",
                                           f"/runs/{run_id}/history")["events"]  # fmt: skip
        (retried,) = [e for e in events if e["kind"] == "run_retried"]
        later = [e for e in events if e["kind"] == "node_started" and e["node"] == "book_car"
                 and e["seq"] > retried["seq"]]  # fmt: skip
        return events if later else None

    events = until("book_car is started again after the retry", attempted_again)
    retried = [e["data"] for e in events if e["kind"] == "run_retried"]
    assert retried == [{"by": "ui-operator", "nodes": again, "reason": "a car was returned"}]
