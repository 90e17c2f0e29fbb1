"""The overview and the workflow page in Chromium: the throughput chart is drawn, a run
that ends moves the overview's numbers without a reload (its stream's patch), and a
workflow's graph is drawn at the server's positions.

Nothing waits on a clock: each step waits for what the page shows, with Playwright's
own polling."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx2
import pytest

from tests.browser.conftest import Served

if TYPE_CHECKING:
    from playwright.sync_api import Page

DOCUMENT = "Claimant: Ann\nAmount: 1200\nIncident: hail on the roof"
CLAIM = {"claim": {"id": "C-1", "policy": "P-100", "document": DOCUMENT}}


def sign_in(page: Page, served: Served, role: str) -> None:
    page.goto(f"{served.base_url}/ui/sign-in")
    page.fill("input[name=token]", served.tokens[role])
    page.click("button[type=submit]")
    page.wait_for_url(f"{served.base_url}/ui/")


def count(page: Page, status: str) -> int:
    found = page.get_attribute(f'#ov-runs a[data-status="{status}"]', "data-count")
    assert found is not None
    return int(found)


@pytest.mark.slow
def test_the_overview_draws_its_chart_and_moves_when_a_run_ends(served: Served, page: Page) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, served, "viewer")
    page.wait_for_selector("#ov-chart .uplot canvas")
    page.wait_for_selector('#live[data-state="live"]')
    assert count(page, "succeeded") == 0

    with httpx2.Client(base_url=served.base_url, trust_env=False, timeout=30.0) as client:
        started = client.post("/runs", json={"workflow": "claim", "input": CLAIM},
                              headers=served.headers("operator"))  # fmt: skip
    assert started.status_code == 201, started.text

    # the worker runs it to the end; the page is patched, never reloaded
    page.wait_for_function("""() => document.querySelector(
        '#ov-runs a[data-status="succeeded"]').dataset.count === "1" """)
    assert page.text_content('#ov-runs a[data-window="all"] b') == "1"
    assert errors == []


@pytest.mark.slow
def test_a_workflow_page_draws_its_graph(served: Served, page: Page) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, served, "viewer")
    page.goto(f"{served.base_url}/ui/workflows/claim")
    page.wait_for_selector("#wf-graph canvas")
    assert page.locator("#wf-grid").inner_text().startswith("Recent runs")
    assert errors == []
