"""The request an ``http`` step sends, made from its filled templates.

Values become text as a person would write them: a string as is, a number or a boolean
as JSON writes it (``3``, ``true``), anything else (an object, a nested list) as JSON;
a ``null`` header, query parameter or form field is left out. A list value of ``query``
or ``form`` gives the parameter once per item. ``User-Agent: keel/<version>``,
``Idempotency-Key: <run>:<node>:<attempt>`` (so a server can drop the repeat of an
attempt that ran twice) and ``Accept-Encoding`` (what ``keel.steps.http_body`` reads)
are added unless the step sets them (in any case).

Invariants: only ``http`` and ``https`` URLs; a value that cannot be sent (a URL that
does not parse, a header with a line break) raises ``HttpRequestError`` (not retried),
whose message quotes no header value (it may be a secret), no URL credentials and
no query (``shown``).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx2

from keel import __version__
from keel.errors import NonRetryable
from keel.spec.step_nodes import HttpNode
from keel.steps.http_body import ACCEPT_ENCODING

SCHEMES = ("http", "https")


#: name and value pairs of a query or a form, as httpx takes them
Pairs = list[tuple[str, str | int | float | bool | None]]


class HttpRequestError(NonRetryable):
    """The step's filled templates do not make a request that can be sent."""


def request_of(
    client: httpx2.Client, node: HttpNode, fields: dict[str, Any], idempotency_key: str
) -> httpx2.Request:
    """The request of ``node`` with its filled template ``fields``."""
    query = _pairs("query", fields.get("query") or {})
    url = checked_url(fields.get("url"))
    url = url.copy_merge_params(query) if query else url  # after the URL's own query
    headers = {name: text for name, value in (fields.get("headers") or {}).items()
               if (text := _text(value)) is not None}  # fmt: skip
    present = {name.lower() for name in headers}
    defaults = {"User-Agent": f"keel/{__version__}", "Idempotency-Key": idempotency_key,
                "Accept-Encoding": ACCEPT_ENCODING}  # fmt: skip
    headers.update({name: value for name, value in defaults.items() if name.lower() not in present})
    content: bytes | None = None
    data: Pairs | None = None
    if "body" in fields:
        content = json.dumps(fields["body"], ensure_ascii=False).encode()
        if "content-type" not in present:
            headers["Content-Type"] = "application/json"
    elif "form" in fields:
        data = _pairs("form", fields["form"] or {})
    try:
        request = client.build_request(
            node.method, url, headers=headers, content=content if data is None else _form(data)
        )  # fmt: skip
    except (httpx2.InvalidURL, httpx2.LocalProtocolError, UnicodeError, ValueError) as exc:
        raise HttpRequestError(f"the request cannot be sent: {_plain(exc)}") from None
    if data is not None and "content-type" not in present:
        request.headers["Content-Type"] = "application/x-www-form-urlencoded"
    return request


def checked_url(value: object) -> httpx2.URL:
    """``value`` as an http(s) URL, or ``HttpRequestError``."""
    if not isinstance(value, str) or not value.strip():
        raise HttpRequestError(f"url must be text (an http:// or https:// URL), got {value!r}")
    try:
        url = httpx2.URL(value.strip())
    except (httpx2.InvalidURL, UnicodeError, ValueError) as exc:
        raise HttpRequestError(f"url is not a valid URL: {_plain(exc)}") from None
    return checked_scheme(url)


def checked_scheme(url: httpx2.URL) -> httpx2.URL:
    if url.scheme not in SCHEMES or not url.host:
        raise HttpRequestError(
            f"url must be an http:// or https:// URL with a host, got {shown(url)!r}"
        )
    return url


def shown(url: httpx2.URL) -> str:
    """``url`` as a message may quote it: without a user name, a password or the query
    (where an API key often goes, percent-encoded: out of the redaction's sight)."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{host}{port}{url.path}"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _pairs(field: str, values: Any) -> Pairs:
    if not isinstance(values, dict):
        raise HttpRequestError(f"{field} must be an object of names and values")
    pairs: Pairs = []
    for name, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            text = _text(item)
            if text is not None:
                pairs.append((str(name), text))
    return pairs


def _form(pairs: Pairs) -> bytes:
    return urlencode(pairs).encode()


def _plain(exc: Exception) -> str:
    """An error's message without the values it may quote (a header's, say)."""
    if isinstance(exc, httpx2.LocalProtocolError):
        return "a header name or value is not allowed (a line break, a control character?)"
    return str(exc)
