"""The live stream in a browser: the page says when it is stale, and after the server
comes back it resumes from where it was (``Last-Event-ID``) and shows what changed
while it was away, without a reload.

Nothing waits on a clock: each step waits, with Playwright's polling, for what the
page must come to show."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx2

from tests.browser.conftest import ROOT, Served
from tests.processes import keel_on

if TYPE_CHECKING:  # playwright missing: the fixtures skip (or fail in CI), not the import
    from playwright.sync_api import Page


def sign_in(page: Page, served: Served, role: str, next_path: str) -> None:
    page.goto(f"{served.base_url}/ui/sign-in?next={next_path}")
    page.fill("input[name=token]", served.tokens[role])
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_path}")


def waiting_run(served: Served) -> str:
    """A document intake run, waiting for its review (an approval)."""
    document = json.loads((ROOT / "examples" / "document.json").read_text())
    answer = httpx2.post(f"{served.base_url}/runs", headers=served.headers("operator"),
                         json={"workflow": "document_intake", "input": document},
                         trust_env=False)  # fmt: skip
    assert answer.status_code == 201, answer.text
    run_id: str = answer.json()["id"]
    return run_id


def test_the_page_goes_stale_when_the_server_stops_and_catches_up_after(
    page: Page, served: Served
) -> None:
    run = waiting_run(served)
    sign_in(page, served, "operator", "/ui/runs")
    row = f"#run-{run}"
    page.wait_for_selector(row)
    page.wait_for_selector('#live[data-state="live"]')

    served.stop()
    page.wait_for_selector('#live[data-state="stale"]')
    assert "stale since" in page.inner_text("#live")

    cancelled = keel_on(served.db_url, "cancel", run, "--reason", "while the server was down")
    assert cancelled.returncode == 0, cancelled.stderr
    served.start()

    page.wait_for_selector('#live[data-state="live"]')
    page.wait_for_selector(f'{row}[data-status="cancelled"]')  # patched, not reloaded
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
