"""Signing in: a token becomes a session cookie, never kept by the browser itself; a
bad token, a stale form and a forged post are refused; a revoked token ends its
sessions; signing out or in again ends the session; sign-in posts are throttled per
address, and pages count against their token's rate limit and log its name."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from keel.server import create_app
from keel.server.dashboard.flash import COOKIE as FLASH_COOKIE
from keel.server.dashboard.pages.signing import SIGN_IN_BURST
from keel.server.dashboard.sessions import COOKIE, FORM_COOKIE, safe_next
from tests.dashboard.conftest import Ui, csrf_of, sign_in


def test_a_page_without_a_session_leads_to_the_sign_in_form(ui: Ui) -> None:
    answer = ui.clients["anonymous"].get("/ui/runs?status=failed")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/sign-in?next=/ui/runs%3Fstatus%3Dfailed"
    assert ui.clients["anonymous"].get("/").headers["location"] == "/ui/"


def test_the_session_cookie_is_httponly_samesite_and_holds_no_token(ui: Ui) -> None:
    client = ui.clients["anonymous"]
    form = client.get("/ui/sign-in")
    form_data = {"token": ui.seeded.tokens["viewer"], "csrf": csrf_of(form.text),
                 "next": "/ui/runs"}  # fmt: skip
    answer = client.post("/ui/sign-in", data=form_data)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/runs"
    cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(COOKIE))
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/ui" in cookie
    assert ui.seeded.tokens["viewer"] not in cookie
    assert client.get("/ui/").status_code == 200


def test_a_bad_token_shows_the_form_again_saying_why(ui: Ui) -> None:
    client = ui.clients["anonymous"]
    form = client.get("/ui/sign-in")
    answer = client.post("/ui/sign-in", data={"token": "keel_nope", "csrf": csrf_of(form.text)})
    assert answer.status_code == 401
    assert "unknown, revoked or expired" in answer.text
    assert COOKIE not in client.cookies


def test_a_sign_in_posted_from_elsewhere_is_refused(ui: Ui) -> None:
    """No form cookie (another site's page posting): no session, whatever the token."""
    client = ui.clients["anonymous"]
    answer = client.post("/ui/sign-in", data={"token": ui.seeded.tokens["admin"], "csrf": "x"})
    assert answer.status_code == 403
    assert COOKIE not in client.cookies


def test_a_post_without_the_csrf_token_is_refused(ui: Ui) -> None:
    client = ui.clients["operator"]
    assert client.post("/ui/sign-out", data={}).status_code == 403
    assert client.post("/ui/sign-out", data={"csrf": "0" * 64}).status_code == 403
    assert client.get("/ui/").status_code == 200  # still signed in


def test_signing_out_ends_the_session_for_good(ui: Ui) -> None:
    client = ui.clients["viewer"]
    stolen = client.cookies[COOKIE]
    answer = client.post("/ui/sign-out", data={"csrf": ui.csrf("viewer")})
    assert answer.status_code == 303
    replay = TestClient(client.app, follow_redirects=False, cookies={COOKIE: stolen})
    ui.clients["viewer"].app.state.sessions._seen.clear()  # type: ignore[attr-defined]
    assert replay.get("/ui/").status_code == 303


def test_a_revoked_token_ends_its_sessions(ui: Ui) -> None:
    client = ui.clients["approver"]
    assert client.get("/ui/").status_code == 200
    ui.store.revoke_token("approver-1", 0.0)
    app = client.app
    app.state.access.tokens._seen.clear()  # type: ignore[attr-defined]
    app.state.sessions._seen.clear()  # type: ignore[attr-defined]
    assert client.get("/ui/").status_code == 303


def test_signing_in_again_works_after_a_stale_form(ui: Ui) -> None:
    client = ui.clients["anonymous"]
    sign_in(client, ui.seeded.tokens["viewer"])
    assert client.get("/ui/").status_code == 200


def test_only_dashboard_paths_are_followed_after_sign_in() -> None:
    assert safe_next("https://evil.example/") == "/ui/"
    assert safe_next("//evil.example/ui") == "/ui/"
    assert safe_next("/ui/runs?x=1") == "/ui/runs?x=1"
    assert safe_next(None) == "/ui/"


@pytest.mark.parametrize("path", ["/uievil", "/ui@evil.example", "/ui.evil", "/ui//evil.example",
                                  "/ui/\\evil", "/ui\\evil", "/api", "ui/runs", ""])  # fmt: skip
def test_a_path_that_only_begins_like_the_dashboard_is_not_followed(path: str) -> None:
    assert safe_next(path) == "/ui/"


@pytest.mark.parametrize("path", ["/ui", "/ui/", "/ui/runs/r1", "/ui?x=1", "/ui/runs?q=a//b"])
def test_the_dashboard_itself_is_followed(path: str) -> None:
    assert safe_next(path) == path


def test_signing_in_again_ends_the_former_session(ui: Ui) -> None:
    """Someone who copied the cookie before gains nothing once its owner signs in again
    (as someone else here)."""
    client = ui.clients["viewer"]
    former = client.cookies[COOKIE]
    sign_in(client, ui.seeded.tokens["admin"])
    assert client.cookies[COOKIE] != former
    assert "admin-1" in client.get("/ui/").text
    ui.clients["viewer"].app.state.sessions._seen.clear()  # type: ignore[attr-defined]
    replay = TestClient(client.app, follow_redirects=False, cookies={COOKIE: former})
    assert replay.get("/ui/").status_code == 303


def test_the_session_check_answers_whether_the_session_holds(ui: Ui) -> None:
    """What a page whose stream was refused asks before going to the sign-in form."""
    answer = ui.clients["viewer"].get("/ui/session")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    gone = ui.clients["anonymous"].get("/ui/session", headers={"HX-Request": "true"})
    assert gone.status_code == 401
    assert gone.headers["HX-Redirect"].startswith("/ui/sign-in?next=")


def test_sign_in_posts_are_throttled_per_address(ui: Ui) -> None:
    app = ui.clients["anonymous"].app
    client = TestClient(app, follow_redirects=False, client=("10.0.0.8", 5000))
    now = time.time()
    app.state.access.clock = lambda: now  # type: ignore[attr-defined]  # no refill meanwhile
    for _ in range(int(SIGN_IN_BURST)):
        form = client.get("/ui/sign-in")
        guess = {"token": "keel_guess", "csrf": csrf_of(form.text)}
        assert client.post("/ui/sign-in", data=guess).status_code == 401
    form = client.get("/ui/sign-in")
    good = {"token": ui.seeded.tokens["viewer"], "csrf": csrf_of(form.text)}
    throttled = client.post("/ui/sign-in", data=good)
    assert throttled.status_code == 429
    assert "Too many sign-in attempts from this address" in throttled.text
    assert int(throttled.headers["Retry-After"]) >= 1
    assert COOKIE not in client.cookies  # even a good token waits
    elsewhere = TestClient(app, follow_redirects=False, client=("10.0.0.9", 5000))
    sign_in(elsewhere, ui.seeded.tokens["viewer"])  # another address is not held up


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def access_lines() -> Iterator[_Lines]:
    logger = logging.getLogger("keel.server.access")
    handler, level = _Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_pages_spend_the_tokens_rate_and_log_its_name(ui: Ui, access_lines: _Lines) -> None:
    """As the API does with the token itself: a session gets no more than its token."""
    now = time.time()
    app = create_app(ui.store, rate=1.0, clock=lambda: now)  # a burst of 2, no refill
    with TestClient(app, follow_redirects=False) as client:
        sign_in(client, ui.seeded.tokens["viewer"])
        assert client.get("/ui/runs").status_code == 200
        assert client.get("/ui/runs").status_code == 200
        over = client.get("/ui/runs")
    assert over.status_code == 429
    assert "token &#39;viewer-1&#39; is over its rate limit" in over.text
    assert over.headers["Retry-After"] == "1"
    pages = [r for r in access_lines.records if r.path == "/ui/runs"]  # type: ignore[attr-defined]
    assert [(r.status, r.token) for r in pages] == [  # type: ignore[attr-defined]
        (200, "viewer-1"), (200, "viewer-1"), (429, "viewer-1")]  # fmt: skip


def test_cookies_are_secure_when_the_browser_came_over_https(ui: Ui) -> None:
    """The session's, the sign-in form's and a flash message's alike."""
    app = ui.clients["operator"].app
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        form = client.get("/ui/sign-in")
        assert "Secure" in _set_cookie(form, FORM_COOKIE)
        answer = client.post("/ui/sign-in", data={"token": ui.seeded.tokens["operator"],
                                                  "csrf": csrf_of(form.text)})  # fmt: skip
        assert answer.status_code == 303
        assert "Secure" in _set_cookie(answer, COOKIE)
        csrf = csrf_of(client.get("/ui/runs").text)
        done = client.post(f"/ui/runs/{ui.seeded.waiting}/pause",
                           data={"csrf": csrf, "reason": "hold on"})  # fmt: skip
        assert done.status_code == 303
        assert "Secure" in _set_cookie(done, FLASH_COOKIE)
    plain = ui.clients["anonymous"].get("/ui/sign-in")
    assert "Secure" not in _set_cookie(plain, FORM_COOKIE)


def _set_cookie(answer: object, name: str) -> str:
    found = [h for h in answer.headers.get_list("set-cookie")  # type: ignore[attr-defined]
             if h.startswith(f"{name}=")]  # fmt: skip
    assert len(found) == 1, found
    return str(found[0])
