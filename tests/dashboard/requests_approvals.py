"""The approvals inbox's pages, for tests/dashboard/test_pages_guarded.py."""

from __future__ import annotations

from typing import Any


def _ending_streams(ui: Any) -> str:
    """The live stream ends at once when the server is closing: a test client reads a
    response whole, and an open stream never ends."""
    ui.clients["admin"].app.state.closing.set()
    return "/ui/approvals/live?tab=all"


REQUESTS: dict[tuple[str, str], Any] = {
    ("GET", "/ui/approvals"): lambda ui: ("/ui/approvals?tab=all", None),
    ("GET", "/ui/approvals/live"): lambda ui: (_ending_streams(ui), None),
    ("POST", "/ui/approvals/{run_id}/{node}/approve"): lambda ui: (
        f"/ui/approvals/{ui.seeded.waiting}/check/approve",
        {"comment": "fine", "tab": "all"},
    ),
    ("POST", "/ui/approvals/{run_id}/{node}/reject"): lambda ui: (
        f"/ui/approvals/{ui.seeded.waiting}/check/reject",
        {"comment": "no", "tab": "all"},
    ),
}
