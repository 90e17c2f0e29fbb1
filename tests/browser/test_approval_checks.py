"""The page's check of a form drawn from a JSON Schema (static/schema_form.js: an
approval's decision, a run's input) says what the server's check says
(keel.server.dashboard.schema_form.check), keyword by keyword: what the page lets
through, the server takes, and both name the problem with the same words."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from keel.server.dashboard.schema_form import check, form_fields

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

STATIC = Path(__file__).parents[2] / "keel" / "server" / "dashboard" / "static"

#: a field's schema and a value: one problem each, or none
CASES: list[tuple[dict[str, Any], Any]] = [
    ({"type": "integer", "minimum": 1}, 0),
    ({"type": "integer", "minimum": 1}, 1),
    ({"type": "number", "maximum": 100}, 100.5),
    ({"type": "number", "exclusiveMinimum": 0}, 0),
    ({"type": "number", "exclusiveMaximum": 5}, 5),
    ({"type": "number", "multipleOf": 0.25}, 0.3),
    ({"type": "number", "multipleOf": 0.25}, 0.75),
    ({"type": "string", "minLength": 3}, "ab"),
    ({"type": "string", "maxLength": 3}, "abcd"),
    ({"type": "string", "maxLength": 3}, "äöü"),  # characters, not bytes
    ({"type": "string", "pattern": "^[A-Z]"}, "lower"),
    ({"type": "string", "pattern": "[0-9]"}, "ab1"),  # searched for, not anchored
    ({"type": "string", "format": "date"}, "2026-02-30"),
    ({"type": "string", "format": "date"}, "2024-02-29"),
    ({"type": "string", "format": "email"}, "nobody"),
    ({"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 2}, ["a", "b", "c"]),
    ({"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1}, []),
    ({"type": "array", "uniqueItems": True}, ["a", "a"]),
]


def test_the_page_and_the_server_find_the_same_problems(page: Page) -> None:
    page.set_content("<!doctype html><html><head></head><body></body></html>")
    page.add_script_tag(path=STATIC / "app.js")
    page.add_script_tag(path=STATIC / "schema_form.js")
    refused = 0
    for schema, value in CASES:
        form = {"type": "object", "properties": {"v": schema}}
        on_server = check(form, form_fields(form), {"v": value}).get("data.v")
        in_page = page.evaluate("([v, s]) => window.keel.schemaForm.problemOf(v, s)",
                                [value, schema])  # fmt: skip
        assert in_page == on_server, (schema, value)
        refused += on_server is not None
    assert refused == 13  # the other five are valid, and both sides say so
