"""The sign-in pages, the session check and the assets, for
tests/dashboard/test_pages_guarded.py."""

from __future__ import annotations

from typing import Any

REQUESTS: dict[tuple[str, str], Any] = {
    ("GET", "/"): lambda ui: ("/", None),
    ("GET", "/ui/sign-in"): lambda ui: ("/ui/sign-in", None),
    ("POST", "/ui/sign-in"): lambda ui: ("/ui/sign-in", {"token": "keel_x"}),
    ("POST", "/ui/sign-out"): lambda ui: ("/ui/sign-out", {}),
    ("GET", "/ui/session"): lambda ui: ("/ui/session", None),
    ("GET", "/ui/static/{path:path}"): lambda ui: ("/ui/static/app.css", None),
}
