"""The runs list's filters: read from the URL (or a form), given to the store, and kept
in every link the page draws, so a filtered list can be bookmarked, shared and paged.

The store does the filtering (``Store.list_runs`` and ``Store.count_runs`` take the same
filters), never the page: what the list shows, what the counts say and what a bulk
action touches are one selection. ``RunFilters.matches`` says the same of one run as
the store would, for the live stream (which re-reads changed runs one by one) and for
a bulk action re-checking a run just before acting on it.

Values arrive as text; a value that cannot be a filter is a ``FilterError`` naming
the field, which the page shows above the form (never a 422 JSON body).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import HTTPException

from keel.engine.state import RunStatus
from keel.server.dashboard.times import date_time_text
from keel.server.service import decode_cursor, encode_cursor
from keel.store.records import RunRecord

STATUSES = tuple(status.value for status in RunStatus)
#: the longest text a filter may be (names, versions and error types are far shorter)
MAX_TEXT = 200
#: what the page calls each filter, for its messages
LABELS = {"status": "status", "workflow": "workflow", "version": "version",
          "created_after": "created after", "created_before": "created before",
          "ended_after": "ended after", "ended_before": "ended before",
          "error_type": "error type", "node": "failed node", "started_by": "started by",
          "late": "late", "cursor": "page"}  # fmt: skip
#: the filters that are times (seconds since the epoch; text: UTC date-times)
TIMES = ("created_after", "created_before", "ended_after", "ended_before")
#: the statuses of a run that ended (only those have an ``ended_at``)
ENDED = ("succeeded", "failed", "cancelled")
_LATE = {"true": True, "yes": True, "false": False, "no": False}


class FilterError(ValueError):
    """A filter's value that is not one: ``field`` (its URL name) and what to do."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{LABELS.get(field, field)}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class RunFilters:
    """Which runs to list: every filter given must hold (None: not filtered)."""

    status: str | None = None
    workflow: str | None = None
    #: a version or its first characters
    version: str | None = None
    #: seconds since the epoch; after: inclusive, before: exclusive (as the store)
    created_after: float | None = None
    created_before: float | None = None
    #: failed runs only: the type of the failing node's last error, and that node
    error_type: str | None = None
    node: str | None = None
    #: a token's name, or a trigger (``schedule:NAME``...)
    started_by: str | None = None
    late: bool | None = None
    #: when the run ended (with its final status; a run not ended has no end): after
    #: inclusive, before exclusive
    ended_after: float | None = None
    ended_before: float | None = None

    @property
    def ended(self) -> bool:
        """Whether only runs that ended are selected (an ended filter is set)."""
        return self.ended_after is not None or self.ended_before is not None

    def query(self) -> dict[str, Any]:
        """The filters as ``Store.list_runs`` and ``Store.count_runs`` take them."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def but(self, **changes: Any) -> RunFilters:
        """These filters with some changed (``status=None``: any status)."""
        return replace(self, **changes)

    @property
    def any(self) -> bool:
        """Whether any filter is set."""
        return any(value is not None for value in self.query().values())

    def matches(self, run: RunRecord) -> bool:
        """Whether the store would select ``run`` with these filters (its row as now)."""
        return (
            (self.status is None or run.status == self.status)
            and (self.workflow is None or run.workflow == self.workflow)
            and (self.version is None or run.spec_version.startswith(self.version))
            and (self.created_after is None or run.created_at >= self.created_after)
            and (self.created_before is None or run.created_at < self.created_before)
            and (self.error_type is None or run.error_type == self.error_type)
            and (self.node is None or run.failed_node == self.node)
            and (self.started_by is None or run.started_by == self.started_by)
            and (self.late is None or run.late == self.late)
            and _within(run.ended_at, self.ended_after, self.ended_before)
        )

    def may_match(self, workflow: str, status: str, late: bool) -> bool:
        """What the change feed tells of a run can already rule it out (no read)."""
        return (
            (self.workflow is None or workflow == self.workflow)
            and (self.status is None or status == self.status)
            and (self.late is None or late == self.late)
            and ((self.error_type is None and self.node is None) or status == "failed")
            and (not self.ended or status in ENDED)
        )

    def params(self) -> dict[str, str]:
        """The filters as URL parameters (the ones set), as ``parse`` reads them back."""
        found: dict[str, str] = {}
        for name, value in self.query().items():
            if value is None:
                continue
            if name in TIMES:
                found[name] = date_time_text(value)
            elif name == "late":
                found[name] = "true" if value else "false"
            else:
                found[name] = str(value)
        return found

    def url(self, path: str = "/ui/runs", **extra: str | None) -> str:
        """``path`` with these filters and ``extra`` parameters (None: left out)."""
        query = {**self.params(), **{k: v for k, v in extra.items() if v is not None}}
        return f"{path}?{urlencode(query)}" if query else path


def _within(at: float | None, after: float | None, before: float | None) -> bool:
    """Whether ``at`` (None: no such time) is in ``[after, before)``, either end open
    when None (both None: anything is, even no time)."""
    if after is None and before is None:
        return True
    return at is not None and (after is None or at >= after) and (before is None or at < before)


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = (params.get(name) or "").strip()
    if not value:
        return None
    if len(value) > MAX_TEXT:
        raise FilterError(name, f"longer than {MAX_TEXT} characters")
    return value


def _date_time(params: Mapping[str, str], name: str) -> float | None:
    """A UTC date-time as the form's field gives it (``2025-01-31T12:00``), or RFC 3339
    with its offset (links from other pages)."""
    value = _text(params, name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise FilterError(name, f"{value!r} is not a date-time: use 2025-01-31T12:00 "
                            "(UTC)") from None  # fmt: skip
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse(params: Mapping[str, str]) -> RunFilters:
    """The filters in ``params`` (a query string or a form); ``FilterError`` for the
    first value that cannot be one. Empty values are no filter (a form's blank field)."""
    status = _text(params, "status")
    if status is not None and status not in STATUSES:
        raise FilterError("status", f"no status {status!r}: use one of {', '.join(STATUSES)}")
    late_text = _text(params, "late")
    if late_text is not None and late_text.lower() not in _LATE:
        raise FilterError("late", f"{late_text!r}: use true or false (or leave it empty)")
    after = _date_time(params, "created_after")
    before = _date_time(params, "created_before")
    if after is not None and before is not None and after >= before:
        raise FilterError("created_before", "must be later than created after")
    ended_after = _date_time(params, "ended_after")
    ended_before = _date_time(params, "ended_before")
    if ended_after is not None and ended_before is not None and ended_after >= ended_before:
        raise FilterError("ended_before", "must be later than ended after")
    return RunFilters(
        status=status,
        workflow=_text(params, "workflow"),
        version=_text(params, "version"),
        created_after=after,
        created_before=before,
        error_type=_text(params, "error_type"),
        node=_text(params, "node"),
        started_by=_text(params, "started_by"),
        late=None if late_text is None else _LATE[late_text.lower()],
        ended_after=ended_after,
        ended_before=ended_before,
    )


Key = tuple[float, str]


def key_text(key: Key) -> str:
    """A place in the list (a run's ``(created_at, id)``) as a URL parameter."""
    return encode_cursor(key[0], key[1])


def parse_key(params: Mapping[str, str], name: str) -> Key | None:
    """A place in the list given back (``cursor``...); ``FilterError`` for another."""
    value = _text(params, name)
    if value is None:
        return None
    try:
        parts = decode_cursor(value, (float, str))
    except HTTPException:
        raise FilterError(name, "not one this page gave: start again from the newest "
                            "runs") from None  # fmt: skip
    return float(parts[0]), str(parts[1])
