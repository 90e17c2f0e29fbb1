"""What every dashboard response carries against framing and injected script (pages,
redirects, error pages, fragments, streams and static files alike), what the templates
must then hold to (no inline script or handler: the policy would block it), and a live
stream that ends once its session has."""

from __future__ import annotations

import itertools
import re
import time
from importlib import resources

import httpx2
import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from keel.server import create_app
from keel.server.dashboard import live
from keel.server.dashboard.headers import CSP
from keel.server.dashboard.sessions import CACHE_SECONDS
from tests.dashboard.conftest import Ui

EXPECTED = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "content-security-policy": CSP,
}


def assert_protected(answer: httpx2.Response) -> None:
    for name, value in EXPECTED.items():
        assert answer.headers.get_list(name) == [value], (name, answer.url, answer.status_code)


def test_the_policy_is_the_one_asked_for() -> None:
    assert CSP == (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def test_pages_fragments_and_redirects_carry_the_headers(ui: Ui) -> None:
    viewer = ui.clients["viewer"]
    for path in ("/ui/", "/ui/runs", f"/ui/runs/{ui.seeded.waiting}",
                 f"/ui/runs/{ui.seeded.waiting}/steps", "/ui/session"):  # fmt: skip
        answer = viewer.get(path)
        assert answer.status_code == 200, (path, answer.text)
        assert_protected(answer)
    anonymous = ui.clients["anonymous"]
    assert_protected(anonymous.get("/ui/sign-in"))
    redirect = anonymous.get("/ui/runs")
    assert redirect.status_code == 303
    assert_protected(redirect)


def test_error_pages_carry_the_headers(ui: Ui) -> None:
    missing = ui.clients["viewer"].get("/ui/runs/no-such-run")
    assert missing.status_code == 404
    assert 'class="problem"' in missing.text
    assert_protected(missing)
    form = {"csrf": ui.csrf("viewer"), "reason": "x"}
    refused = ui.clients["viewer"].post(f"/ui/runs/{ui.seeded.waiting}/cancel", data=form)
    assert refused.status_code == 403
    assert_protected(refused)
    assert_protected(ui.clients["viewer"].get("/ui/no-such-page"))


def test_the_page_of_an_unexpected_failure_carries_the_headers(ui: Ui) -> None:
    """A 500 is answered from outside the middlewares: the error page sets them itself."""
    app = create_app(ui.store, rate=0)

    @app.get("/ui/boom", include_in_schema=False)
    def boom(request: Request) -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/ui/boom")
    assert answer.status_code == 500
    assert "the server failed" in answer.text
    assert_protected(answer)


def test_static_files_carry_the_headers_once(ui: Ui) -> None:
    answer = ui.clients["anonymous"].get("/ui/static/app.js")
    assert answer.status_code == 200
    assert_protected(answer)  # nosniff set by the route too, and still only once


def test_the_api_is_left_as_it_was(ui: Ui) -> None:
    answer = ui.clients["anonymous"].get("/health")
    assert "content-security-policy" not in answer.headers


def test_pages_tell_htmx_to_evaluate_nothing(ui: Ui) -> None:
    page = ui.clients["viewer"].get("/ui/").text
    assert ('<meta name="htmx-config" content=\'{"allowEval":false,"allowScriptTags":false,'
            '"includeIndicatorStyles":false}\'>') in page  # fmt: skip
    assert re.search(r'<script src="/ui/static/app\.js\?v=\w+"></script>', page), "app.js deferred"


_SCRIPT = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)


def _templates() -> list[tuple[str, str]]:
    root = resources.files("keel.server.dashboard") / "templates"
    found = []

    def walk(folder: object, prefix: str) -> None:
        for entry in folder.iterdir():  # type: ignore[attr-defined]
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".html"):
                found.append((f"{prefix}{entry.name}", entry.read_text()))

    walk(root, "")
    return sorted(found)


@pytest.mark.parametrize(("name", "text"), _templates(), ids=[n for n, _ in _templates()])
def test_no_template_holds_script_the_policy_would_block(name: str, text: str) -> None:
    markup = re.sub(r"\{#.*?#\}", "", text, flags=re.DOTALL)  # Jinja comments are not sent
    assert "hx-on" not in markup
    assert not re.search(r'hx-trigger="[^"]*\[', markup), "a trigger filter needs eval"
    assert not re.search(r"hx-va(ls|rs)=['\"](js|javascript):", markup), "so does js: here"
    assert not _HANDLER.search(markup), _HANDLER.search(markup)
    for attributes in _SCRIPT.findall(markup):
        assert "src=" in attributes or 'type="application/json"' in attributes, attributes


def test_a_stream_ends_once_its_token_is_revoked(ui: Ui, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opened while signed in; the token revoked meanwhile: the stream says
    ``signed-out`` and ends, rather than following the store for whoever holds it."""
    monkeypatch.setattr(live, "SESSION_CHECK_SECONDS", 0.0)
    monkeypatch.setattr(live, "KEEPALIVE_SECONDS", 0.0)  # a line per turn: bounded below
    monkeypatch.setattr(live, "POLL_SECONDS", 0.01)
    client = ui.clients["viewer"]
    app = client.app
    with client.stream("GET", f"/ui/live/runs/{ui.seeded.waiting}") as answer:
        assert answer.status_code == 200
        assert_protected(answer)
        lines = answer.iter_lines()
        assert "event: caught-up" in itertools.islice(lines, 50)
        assert ": keepalive" in itertools.islice(lines, 50)  # open, and signed in still
        ui.store.revoke_token("viewer-1", 0.0)
        app.state.access.tokens._seen.clear()  # type: ignore[attr-defined]
        app.state.sessions._seen.clear()  # type: ignore[attr-defined]
        # and past the caches' time, for a lookup read before the revocation and
        # cached after the clearing
        later = time.time() + 2 * CACHE_SECONDS
        app.state.access.clock = lambda: later  # type: ignore[attr-defined]
        rest = list(itertools.islice(lines, 400))
    assert len(rest) < 400, "the stream went on after the token was revoked"
    assert "event: signed-out" in rest
