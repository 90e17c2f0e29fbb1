"""Per-token rate limits (a token bucket per identity, in this server's memory), and the
largest request bodies read.

Each server process counts on its own (several servers behind a balancer each allow the
rate): what it protects is the store and the server from one runaway client, which a
per-process bucket does without a write per request.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimits:
    """At most ``rate`` requests a second per identity, with bursts up to ``burst``;
    ``rate`` 0: no limit. At most ``most`` buckets are kept: past that, the buckets
    that have filled up again are dropped (one made afresh is the same), so keys a
    caller makes up (client addresses) cannot grow the memory without end."""

    def __init__(self, rate: float, burst: float | None = None, most: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, 2 * rate)
        self.most = most
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
                if len(self._buckets) >= self.most:
                    self._forget_full(now)
                bucket = self._buckets[who] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop the buckets full again by ``now``; if ``most`` are still draining, drop
        them all (the memory's bound matters more than a flood's own buckets)."""
        self._buckets = {who: b for who, b in self._buckets.items()
                         if b.tokens + (now - b.at) * self.rate < self.burst}  # fmt: skip
        if len(self._buckets) >= self.most:
            self._buckets.clear()


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


#: the largest request body the API reads (bytes): a definition or a run's input
MOST_BODY_BYTES = 10 * 1024 * 1024
#: the largest webhook delivery (bytes) unless ``keel serve --hook-body-limit`` says
#: otherwise: a sender's event, not a definition; its sender is known only once the
#: body is read and its HMAC computed, so less of it is read for anyone
MOST_HOOK_BYTES = 1024 * 1024


class BodyLimit:
    """ASGI middleware: a request body over its limit gets 413 before it is read whole
    (by its ``Content-Length``, or counted as it streams in when there is none). The
    limit is ``most``, or, for a path under a prefix of ``under``, that prefix's."""

    def __init__(
        self, app: Any, most: int = MOST_BODY_BYTES, under: Mapping[str, int] | None = None
    ) -> None:
        self.app, self.most = app, most
        self.under = dict(under or {})

    def most_for(self, scope: Any) -> int:
        """The limit of this request's path (seen from the app: less any ``root_path``)."""
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        return next((most for prefix, most in self.under.items() if path.startswith(prefix)),
                    self.most)  # fmt: skip

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        most = self.most_for(scope)
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > most):
            await _refuse(send, most)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > most:
                raise _TooLargeError
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLargeError:
            await _refuse(send, most)


async def _refuse(send: Any, most: int) -> None:
    detail = f"the request body is over {most} bytes"
    body = json.dumps({"type": "about:blank", "title": "Content too large", "status": 413,
                       "detail": detail}).encode()  # fmt: skip
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class _TooLargeError(Exception):
    """A streamed body went over the limit."""
