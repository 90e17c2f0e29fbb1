"""An HTTP failure of a provider as a ``ProviderError``: retryable or not, and when.

The SDKs are built with ``max_retries=0``: retrying is keel's durable retry, which
records each attempt and waits as long as the provider asked (``Retry-After`` in
seconds or as an HTTP date, or ``retry-after-ms``). 408, 409, 429 and every 5xx may pass
on another try (the statuses the SDKs themselves retry); any other 4xx will not.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from keel.llm.providers.keys import scrub
from keel.llm.types import ProviderError

RETRYABLE_STATUSES = frozenset({408, 409, 429})
_HINTS = {
    400: "the provider refused the request as written",
    401: "the API key was refused: check the variable that holds it",
    403: "the API key may not use this model or endpoint",
    404: "check the model name and the provider's base_url",
    422: "the provider refused the request as written",
    429: "rate limited",
}
#: longest detail quoted from a provider's error body
_DETAIL_CHARS = 300


def status_error(
    provider: str, status: int, headers: Mapping[str, str], detail: str, key: str | None
) -> ProviderError:
    """``detail``: the provider's own message (scrubbed of ``key`` before it is quoted)."""
    retryable = status in RETRYABLE_STATUSES or status >= 500
    hint = _HINTS.get(status, "the provider failed" if status >= 500 else "")
    message = f"provider '{provider}' answered HTTP {status}"
    if hint:
        message += f" ({hint})"
    detail = scrub(" ".join(detail.split()), key)[:_DETAIL_CHARS]
    if detail:
        message += f": {detail}"
    wait = retry_after(headers) if retryable else None
    return ProviderError(message, retryable=retryable, retry_after=wait, status=status)


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the provider asked to wait, or None; ``now`` (epoch seconds) for a date."""
    lowered = {name.lower(): value for name, value in headers.items()}
    milliseconds = _number(lowered.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if 0 <= number < 1e9 else None
