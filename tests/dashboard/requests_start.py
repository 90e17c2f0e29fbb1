"""Starting a run from a workflow's page, for tests/dashboard/test_pages_guarded.py."""

from __future__ import annotations

from typing import Any

REQUESTS: dict[tuple[str, str], Any] = {
    ("POST", "/ui/workflows/{name}/start"): lambda ui: (
        "/ui/workflows/review/start",
        {"data.amount": "5"},
    ),
}
