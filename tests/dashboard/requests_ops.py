"""The overview, needs-attention and workflow pages, for
tests/dashboard/test_pages_guarded.py. A live stream is asked for with the server
closing (``app.state.closing``): it then ends after its first events instead of
following the store for ever."""

from __future__ import annotations

from typing import Any

from tests.dashboard.conftest import Ui


def closing(ui: Ui, path: str) -> tuple[str, None]:
    """``path``, on a server that is shutting down: its stream answers, then ends."""
    ui.clients["admin"].app.state.closing.set()  # type: ignore[attr-defined]
    return path, None


REQUESTS: dict[tuple[str, str], Any] = {
    ("GET", "/ui/"): lambda ui: ("/ui/", None),
    ("GET", "/ui/live/overview"): lambda ui: closing(ui, "/ui/live/overview"),
    ("GET", "/ui/attention"): lambda ui: ("/ui/attention", None),
    ("GET", "/ui/live/attention"): lambda ui: closing(ui, "/ui/live/attention"),
    ("GET", "/ui/workflows"): lambda ui: ("/ui/workflows", None),
    ("GET", "/ui/workflows/{name}"): lambda ui: ("/ui/workflows/review", None),
}
