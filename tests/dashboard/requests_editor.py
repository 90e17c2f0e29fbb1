"""The editor's pages, for tests/dashboard/test_pages_guarded.py: the deploy is of a
valid definition (a new workflow), so the role that may gets its redirect."""

from __future__ import annotations

from typing import Any

#: a valid definition of a workflow the seeded store does not have
NEW_WORKFLOW = """
name: guarded_new
nodes:
  - id: only
    task: tests.server.serverflows:book
"""

REQUESTS: dict[tuple[str, str], Any] = {
    ("GET", "/ui/editor"): lambda ui: ("/ui/editor?workflow=review", None),
    ("POST", "/ui/editor/check"): lambda ui: ("/ui/editor/check", {"definition": NEW_WORKFLOW}),
    ("POST", "/ui/editor/deploy"): lambda ui: ("/ui/editor/deploy", {"definition": NEW_WORKFLOW}),
}
