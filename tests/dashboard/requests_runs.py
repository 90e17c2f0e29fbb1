"""The runs list's pages, for tests/dashboard/test_pages_guarded.py."""

from __future__ import annotations

from typing import Any

from tests.dashboard.conftest import Ui


def _live(ui: Ui) -> tuple[str, None]:
    """The stream, ended at once (as when the server shuts down), so a GET returns."""
    ui.clients["admin"].app.state.closing.set()  # type: ignore[attr-defined]
    return "/ui/live/runs?status=running", None


REQUESTS: dict[tuple[str, str], Any] = {
    ("GET", "/ui/runs"): lambda ui: ("/ui/runs?status=failed", None),
    ("GET", "/ui/runs/counts"): lambda ui: ("/ui/runs/counts?workflow=review", None),
    ("GET", "/ui/live/runs"): _live,
    ("GET", "/ui/runs/bulk"): lambda ui: ("/ui/runs/bulk?action=cancel&status=running", None),
    # a cancel of the succeeded runs: nothing to do (the table's check that nothing changed)
    ("POST", "/ui/runs/bulk"): lambda ui: (
        "/ui/runs/bulk", {"action": "cancel", "status": "succeeded", "reason": "guard test"}),
}  # fmt: skip
