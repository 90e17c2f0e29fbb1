"""Times as text, always in UTC: for links and forms (``iso``, ``date_time_text``), for
the downloads' lines, and for the ``<time>`` elements pages draw (``rendering.when``
wraps ``iso`` and ``utc_text`` in HTML; the page's script shows them in the viewer's
choice of zone).

Every time in keel is seconds since the epoch (a float); these are the only places
that turn one into text for the dashboard, so a page, its links and its forms agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def iso(at: float, timespec: Literal["seconds", "milliseconds"] = "seconds") -> str:
    """ISO 8601 in UTC with ``Z`` (``2025-01-31T12:00:00Z``): what the runs list's
    filters and the API take, and a ``<time>``'s ``datetime``."""
    return _utc(at).isoformat(timespec=timespec).replace("+00:00", "Z")


def date_time_text(at: float) -> str:
    """A time as the filter form shows it: UTC, to the second, no zone suffix (the
    form's fields are labelled UTC)."""
    return _utc(at).strftime("%Y-%m-%dT%H:%M:%S")


def utc_text(at: float) -> str:
    """A time for people to read, its zone named: ``2025-01-31 12:00:00 UTC``."""
    return _utc(at).strftime("%Y-%m-%d %H:%M:%S UTC")
