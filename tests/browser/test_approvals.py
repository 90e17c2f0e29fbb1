"""The approvals inbox in a browser, against a real ``keel serve --with-worker``: an
approval joins the open inbox live, is approved there with a form value and its run
finishes; a value the form's schema refuses is refused in the page, before anything is
sent. Nothing waits on a clock: each step waits for what it needs to see."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

from tests.browser.conftest import Served
from tests.processes import ROOT, until

if TYPE_CHECKING:  # playwright missing: the fixtures skip (or fail in CI), not the import
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

#: the document lacks a total, so its run stops at the review approval
DOCUMENT = json.loads((ROOT / "examples" / "document.json").read_text())
#: long enough for the worker to take the run to its approval on a busy machine
SECONDS = 30_000


def api(served: Served, method: str, path: str, **kwargs: Any) -> Any:
    answer = httpx2.request(method, f"{served.base_url}{path}", headers=served.headers("admin"),
                            trust_env=False, timeout=10.0, **kwargs)  # fmt: skip
    assert answer.status_code < 300, answer.text
    return answer.json()


def start_intake(served: Served) -> str:
    run: dict[str, Any] = api(served, "POST", "/runs",
                              json={"workflow": "document_intake", "input": DOCUMENT})  # fmt: skip
    return str(run["id"])


def pending(served: Served, run_id: str) -> bool:
    found = api(served, "GET", "/approvals", params={"run_id": run_id})["approvals"]
    return any(a["node"] == "review" for a in found)


def sign_in(page: Page, served: Served, role: str) -> None:
    page.goto(f"{served.base_url}/ui/sign-in?next=/ui/approvals")
    page.fill("input[name=token]", served.tokens[role])
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/approvals")


def test_an_approval_comes_live_and_is_approved_with_a_form_value(
    page: Page, served: Served
) -> None:
    from playwright.sync_api import expect

    sign_in(page, served, "approver")
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=SECONDS)
    run_id = start_intake(served)

    article = page.locator(f"#approval-{run_id}-review")  # joins the open page live
    expect(article).to_be_visible(timeout=SECONDS)
    expect(article).to_contain_text('s3://intake/invoice-0042.txt: ["missing total"]')
    article.locator("[name='data.note']").fill("total is on page 2")
    article.locator("[name='data.total']").fill("118.00")
    article.locator("[name='comment']").fill("checked by hand")
    article.get_by_role("button", name="Approve").click()

    expect(page.locator(".flash-message")).to_contain_text(
        f"approved Review extracted fields of run {run_id[:8]}"
    )
    expect(page.locator(f"#approval-{run_id}-review")).to_have_count(0)
    run = until("the run finishes", lambda: (r := api(served, "GET", f"/runs/{run_id}"))
                ["status"] in ("succeeded", "failed") and r)  # fmt: skip
    assert run["status"] == "succeeded", run
    assert run["output"]["review"] == {"note": "total is on page 2", "total": "118.00"}
    events = api(served, "GET", f"/runs/{run_id}/history")["events"]
    (decision,) = [e["data"] for e in events if e["kind"] == "approval_decided"]
    assert (decision["by"], decision["comment"]) == ("ui-approver", "checked by hand")


def test_a_value_the_schema_refuses_is_refused_before_it_is_sent(
    page: Page, served: Served
) -> None:
    from playwright.sync_api import expect

    run_id = start_intake(served)
    until("the review approval opens", lambda: pending(served, run_id))
    sign_in(page, served, "approver")
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url)
            if request.method == "POST" else None)  # fmt: skip

    article = page.locator(f"#approval-{run_id}-review")
    total = article.locator("[name='data.total']")
    total.fill("12,5")
    article.get_by_role("button", name="Approve").click()

    error = article.locator("[data-name='data.total'] .field-error")
    expect(error).to_have_text("must match the pattern ^(\\d+\\.\\d{2})?$")
    assert posts == []  # the form never left the page (the server would say the same)
    assert page.url.endswith("/ui/approvals")
    expect(total).to_have_attribute("aria-invalid", "true")
    expect(total).to_be_focused()
    assert pending(served, run_id)

    total.fill("12.50")  # corrected: the message goes as it is typed
    expect(error).to_have_text("")
    assert posts == []
    assert pending(served, run_id)

    # decided elsewhere meanwhile: it leaves the open page, which says so (it was being typed in)
    api(served, "POST", f"/runs/{run_id}/approvals/review/approve", json={"comment": "api"})
    expect(article).to_have_count(0, timeout=SECONDS)
    expect(page.locator("#approvals-notice")).to_contain_text("decided elsewhere")
