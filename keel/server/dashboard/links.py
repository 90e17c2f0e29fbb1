"""Links from a number to the runs it counts: the runs list (``/ui/runs``) with the same
filters the count was made with, so following a number shows exactly those runs.

The runs list takes ``status``, ``workflow``, ``version``, ``created_after``,
``created_before``, ``ended_after``, ``ended_before`` (ISO 8601 in UTC, as the API's
``GET /runs``), ``error_type``, ``node``, ``started_by`` and ``late``
(``true``/``false``). A number of runs that *ended* in a window links with the ended
filters, one of runs *created* in it with the created ones: the list counts the same.
"""

from __future__ import annotations

from urllib.parse import urlencode

from keel.server.dashboard.run_filters import TIMES
from keel.server.dashboard.times import iso

RUNS = "/ui/runs"


def runs_url(**filters: str | float | bool | None) -> str:
    """The runs list filtered by ``filters`` (None: not filtered); times are seconds
    since the epoch, written as ``iso`` does."""
    query: dict[str, str] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if name in TIMES and not isinstance(value, str):
            query[name] = iso(float(value))
        elif isinstance(value, bool):
            query[name] = "true" if value else "false"
        else:
            query[name] = str(value)
    return f"{RUNS}?{urlencode(query)}" if query else RUNS


def run_url(run_id: str) -> str:
    return f"{RUNS}/{run_id}"
