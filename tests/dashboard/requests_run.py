"""The run page, its parts and its actions, for tests/dashboard/test_pages_guarded.py."""

from __future__ import annotations

import threading
from typing import Any

from tests.dashboard.conftest import Ui


def _closed(ui: Ui, path: str) -> tuple[str, None]:
    """The live stream ends when the server closes: closed first, a GET of it returns."""
    closing: threading.Event = ui.clients["admin"].app.state.closing  # type: ignore[attr-defined]
    closing.set()
    return path, None


REQUESTS: dict[tuple[str, str], Any] = {
    ("GET", "/ui/runs/{run_id}"): lambda ui: (f"/ui/runs/{ui.seeded.waiting}", None),
    ("GET", "/ui/runs/{run_id}/elements"): lambda ui: (
        f"/ui/runs/{ui.seeded.waiting}/elements?everything=true", None),
    ("GET", "/ui/runs/{run_id}/nodes/{node}"): lambda ui: (
        f"/ui/runs/{ui.seeded.waiting}/nodes/check", None),
    ("GET", "/ui/runs/{run_id}/history"): lambda ui: (
        f"/ui/runs/{ui.seeded.waiting}/history?before=2", None),
    ("GET", "/ui/runs/{run_id}/verify"): lambda ui: (f"/ui/runs/{ui.seeded.waiting}/verify", None),
    ("GET", "/ui/runs/{run_id}/logs"): lambda ui: (
        f"/ui/runs/{ui.seeded.waiting}/logs?node=book", None),
    ("GET", "/ui/runs/{run_id}/logs.txt"): lambda ui: (
        f"/ui/runs/{ui.seeded.waiting}/logs.txt?node=book", None),
    ("GET", "/ui/runs/{run_id}/steps"): lambda ui: (f"/ui/runs/{ui.seeded.waiting}/steps", None),
    ("GET", "/ui/runs/{run_id}/timeline"): lambda ui: (
        f"/ui/runs/{ui.seeded.waiting}/timeline", None),
    ("GET", "/ui/runs/{run_id}/preview"): lambda ui: (
        f"/ui/runs/{ui.seeded.failed}/preview?action=retry", None),
    ("GET", "/ui/live/runs/{run_id}"): lambda ui: _closed(ui, f"/ui/live/runs/{ui.seeded.waiting}"),
    ("POST", "/ui/runs/{run_id}/cancel"): lambda ui: (
        f"/ui/runs/{ui.seeded.waiting}/cancel", {"reason": "not needed"}),
    ("POST", "/ui/runs/{run_id}/pause"): lambda ui: (
        f"/ui/runs/{ui.seeded.waiting}/pause", {"reason": "hold on"}),
    ("POST", "/ui/runs/{run_id}/unpause"): lambda ui: (
        f"/ui/runs/{ui.seeded.paused}/unpause", {"reason": "go on"}),
    ("POST", "/ui/runs/{run_id}/retry"): lambda ui: (
        f"/ui/runs/{ui.seeded.failed}/retry", {"reason": "again"}),
    ("POST", "/ui/runs/{run_id}/skip"): lambda ui: (
        f"/ui/runs/{ui.seeded.waiting}/skip",
        {"node": "book", "output": '"by hand"', "reason": "done elsewhere"},
    ),
}  # fmt: skip
