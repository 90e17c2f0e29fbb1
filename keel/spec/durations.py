"""Parsing of durations written by people: ``"30s"``, ``"1h30m"``, ``"PT5M"`` or seconds.

Durations are normalised to seconds (a float) in the spec, so ``"60s"`` and ``"1m"`` give
the same canonical JSON and therefore the same workflow version.

A spec's durations (timeouts, retry backoffs, deadlines, the timeouts of approvals and
signals, timers) are at most ``MAX_DURATION``, 365 days (``spec_duration``): a longer one
is a slip of the unit far more often than a plan, and every wait the runtime makes on it
(a thread's timeout, a timer) then stays within what the platform's clocks can count.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

#: the longest duration a spec may give, in seconds (365 days)
MAX_DURATION = 365 * 86_400.0

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_COMPACT = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_ISO = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(value: object) -> float:
    """Return the duration in seconds, or raise ``ValueError`` saying which forms work."""
    seconds = _seconds(value)
    if not math.isfinite(seconds):  # "inf", "nan", 1e400: no JSON form, so no version
        raise ValueError(f"duration {value!r} is not a finite number of seconds")
    return seconds


def spec_duration(value: object) -> float:
    """``parse_duration`` for a spec's field: also refuses more than ``MAX_DURATION``."""
    seconds = parse_duration(value)
    if seconds > MAX_DURATION:
        shown = (
            repr(value)
            if isinstance(value, str)
            else f"{seconds:.10g} s ({seconds / 86_400:.4g} days)"
        )
        raise ValueError(f"duration {shown} is too long: keel accepts at most 365 days ('365d')")
    return seconds


def format_duration(seconds: float) -> str:
    """A duration as people write it, in the compact form ``parse_duration`` reads back:
    ``"250ms"``, ``"1.5s"``, ``"10m"``, ``"1h30m"``, ``"2d3h"`` (past a minute, to the
    whole second)."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{round(seconds, 1):g}s"
    left = round(seconds)
    parts = []
    for unit in ("d", "h", "m", "s"):
        amount, left = divmod(left, int(_UNITS[unit]))
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def _seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if not isinstance(value, str):
        raise ValueError(f"expected a duration, got {type(value).__name__}")
    text = value.strip().replace(" ", "")
    if not text:
        raise ValueError("empty duration")
    iso = _ISO.match(text.upper())
    if iso and text.upper() not in ("P", "PT"):
        parts = {unit: float(amount) for unit, amount in iso.groupdict().items() if amount}
        return sum(amount * _UNITS[unit] for unit, amount in parts.items())
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    pos = 0
    total = 0.0
    for match in _COMPACT.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(body) or pos == 0:
        try:
            return float(text)
        except ValueError:
            raise ValueError(
                f"cannot read duration {value!r}: use forms like '30s', '5m', '1h30m', '2d', "
                "'250ms', an ISO 8601 duration such as 'PT5M', or a number of seconds"
            ) from None
    return sign * total
