"""Per-token rate limits: a token bucket per identity, in this server's memory.

Each server process counts on its own (several servers behind a balancer each allow the
rate): what it protects is the store and the server from one runaway client, which a
per-process bucket does without a write per request.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimits:
    """At most ``rate`` requests a second per identity, with bursts up to ``burst``;
    ``rate`` 0: no limit."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, 2 * rate)
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def wait_for(self, who: str, now: float) -> float:
        """0 when ``who`` may go now (the request is counted); else the seconds until it
        may (nothing counted)."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            bucket = self._buckets.get(who)
            if bucket is None:
                bucket = self._buckets[who] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


#: the largest request body the API reads (bytes): a definition or a run's input
MOST_BODY_BYTES = 10 * 1024 * 1024


class BodyLimit:
    """ASGI middleware: a request body over ``most`` bytes gets 413 before it is read
    whole (by its ``Content-Length``, or counted as it streams in when there is none)."""

    def __init__(self, app: Any, most: int = MOST_BODY_BYTES) -> None:
        self.app, self.most = app, most

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.most):
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.most:
                raise _TooLargeError
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLargeError:
            await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        detail = f"the request body is over {self.most} bytes"
        body = json.dumps({"type": "about:blank", "title": "Content too large", "status": 413,
                           "detail": detail}).encode()  # fmt: skip
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


class _TooLargeError(Exception):
    """A streamed body went over the limit."""
