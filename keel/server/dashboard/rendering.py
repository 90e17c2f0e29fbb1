"""Pages and fragments from Jinja2 templates (``templates/``), autoescaped.

Every page gets the viewer (for their name and what their role may do, so a button the
role may not use is not drawn), the CSRF token its forms carry, and the asset URLs with
their content hash (cached for a year, a new file is a new URL). Times leave as
``<time>`` elements in UTC, labelled; the page's script shows them in UTC, local time
or relative, as the viewer chooses, always with the zone named.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from keel.runtime.views.ledger import dollars
from keel.server.dashboard.assets import asset_url
from keel.server.dashboard.sessions import Viewer
from keel.server.dashboard.times import iso, utc_text


def when(at: float | None) -> Markup:
    """A time as the page shows it: UTC, labelled, machine-readable for the script."""
    if at is None:
        return Markup('<span class="muted">—</span>')
    text = utc_text(at)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(iso(at), text, text)


def duration(seconds: float | None) -> str:
    """``1h 02m``, ``3m 05s``, ``4.2s``, ``120ms``: short, for tables."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def number(value: int) -> str:
    """``12,345``: a count as people read it."""
    return f"{value:,}"


def as_json(value: Any, indent: int | None = 2) -> str:
    """A value as readable JSON (for input and output panels)."""
    return json.dumps(value, indent=indent, ensure_ascii=False, sort_keys=False, default=str)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("keel.server.dashboard", "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when, duration=duration, as_json=as_json, number=number, dollars=dollars
    )
    env.globals.update(asset=asset_url)
    return env


TEMPLATES = _environment()


def fragment(name: str, **context: Any) -> str:
    """A template's text (a fragment for htmx or an SSE event)."""
    return TEMPLATES.get_template(name).render(**context)


def page(
    request: Request, name: str, viewer: Viewer | None, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """A whole page (an htmx request for a part gets a ``fragment`` instead)."""
    text = fragment(name, request=request, viewer=viewer, path=request.url.path, **context)
    return HTMLResponse(text, status_code=status, headers={"Cache-Control": "no-store"})
