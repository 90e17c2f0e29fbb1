"""Signing in: a token becomes a session cookie, never kept by the browser itself; a
bad token, a stale form and a forged post are refused; a revoked token ends its
sessions; signing out ends the session."""

from __future__ import annotations

from fastapi.testclient import TestClient

from keel.server.dashboard.sessions import COOKIE, safe_next
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
