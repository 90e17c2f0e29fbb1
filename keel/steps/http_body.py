"""A response body read with a bound on what is held: the ``http`` step's size limit.

The body is read as it comes, as the bytes sent (``iter_raw``), and decompressed here
when the server compressed it (``gzip`` or ``deflate``), asking zlib for no more output
than the limit leaves: a small compressed body that would inflate past the limit (a
"zip bomb") is stopped after ``limit`` bytes of output, never inflated whole. Other
encodings (``br``, ``zstd``...) are refused: keel asks for ``gzip, deflate`` only.

Invariant: at most ``limit`` bytes of body, plus one network read, are held at any time;
past them ``HttpResponseTooLarge`` (not retried: the same answer would come again).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator

import httpx2

from keel.errors import KeelError, NonRetryable

#: what the step asks a server for unless it sets ``Accept-Encoding`` itself
ACCEPT_ENCODING = "gzip, deflate"
_GZIP = 16 + zlib.MAX_WBITS
#: how a body went past the limit, by whether it was compressed
_PAST = {False: "it went on past that", True: "its content inflates past that"}


class HttpResponseTooLarge(NonRetryable):
    """The response is longer than the step's ``max_response_bytes``."""


class HttpBodyError(NonRetryable):
    """The body is not what the step was told to expect (JSON that does not parse, an
    encoding keel does not read)."""


class HttpTimeoutError(KeelError, TimeoutError):
    """The request did not end within the step's timeout (retried, as a timeout is)."""


def read_body(response: httpx2.Response, limit: int, deadline: float | None) -> bytes:
    """The whole body (decompressed): ``HttpResponseTooLarge`` past ``limit`` bytes,
    ``HttpTimeoutError`` past ``deadline`` (``time.monotonic``)."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise HttpResponseTooLarge(too_large(limit, f"it says it has {int(declared)} bytes"))
    chunks: list[bytes] = []
    size = 0
    for chunk in _decoded(response, encoding, limit):
        size += len(chunk)
        if size > limit:
            raise HttpResponseTooLarge(too_large(limit, _PAST[encoding not in ("", "identity")]))
        chunks.append(chunk)
        if deadline is not None and time.monotonic() > deadline:
            raise HttpTimeoutError("the response was still coming at the step's timeout")
    return b"".join(chunks)


def first_bytes(response: httpx2.Response, count: int, deadline: float | None) -> bytes:
    """Up to ``count`` bytes of the start of the body (decompressed), reading no further,
    and no longer than ``deadline`` (``time.monotonic``): a server that trickles a byte at
    a time gets the step's timeout, not ``count`` times the time a read may wait."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    found = b""
    try:
        for chunk in _decoded(response, encoding, count):
            found += chunk
            if len(found) >= count or (deadline is not None and time.monotonic() > deadline):
                break
    except (httpx2.HTTPError, HttpBodyError, HttpResponseTooLarge):
        pass  # only quoted in a message: what was read is enough
    return found[:count]


def too_large(limit: int, how: str) -> str:
    return (
        f"the response is longer than max_response_bytes ({limit} bytes): {how}; raise "
        "max_response_bytes on the step (or [http] max_response_bytes in keel.toml) if it "
        "should be read"
    )


def _decoded(response: httpx2.Response, encoding: str, limit: int) -> Iterator[bytes]:
    if encoding in ("", "identity"):
        yield from response.iter_raw()
        return
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise HttpBodyError(
            f"the response is encoded as {encoding!r}, which keel does not read (it asks "
            f"for {ACCEPT_ENCODING}); set an Accept-Encoding header the server honours"
        )
    inflate = zlib.decompressobj(_GZIP if "gzip" in encoding else zlib.MAX_WBITS)
    given = 0
    try:
        for raw in response.iter_raw():
            data = inflate.decompress(raw, limit - given + 1)
            given += len(data)
            yield data
            if inflate.unconsumed_tail:  # more output than the limit leaves
                raise HttpResponseTooLarge(too_large(limit, _PAST[True]))
        yield inflate.flush()
    except zlib.error as exc:
        raise HttpBodyError(f"the {encoding} response body does not decompress: {exc}") from None
