"""The dashboard's times as text (``keel.server.dashboard.times``): UTC everywhere, each
form where it is read back (links, forms, downloads, ``<time>`` elements)."""

from __future__ import annotations

from keel.server.dashboard.links import runs_url
from keel.server.dashboard.rendering import when
from keel.server.dashboard.run_filters import parse
from keel.server.dashboard.times import date_time_text, iso, utc_text

AT = 1738324800.25  # 2025-01-31 12:00:00.250 UTC


def test_each_form_of_a_time_is_utc() -> None:
    assert iso(AT) == "2025-01-31T12:00:00Z"
    assert iso(AT, "milliseconds") == "2025-01-31T12:00:00.250Z"
    assert date_time_text(AT) == "2025-01-31T12:00:00"
    assert utc_text(AT) == "2025-01-31 12:00:00 UTC"
    assert str(when(AT)) == ('<time datetime="2025-01-31T12:00:00Z" title="2025-01-31 12:00:00 '
                             'UTC">2025-01-31 12:00:00 UTC</time>')  # fmt: skip


def test_a_link_and_the_form_read_back_the_same_second() -> None:
    assert runs_url(created_after=AT) == "/ui/runs?created_after=2025-01-31T12%3A00%3A00Z"
    filters = parse({"created_after": iso(AT)})
    assert filters.params() == {"created_after": "2025-01-31T12:00:00"}
    assert parse(filters.params()).created_after == int(AT)
