"""``GET /metrics``: the process's metrics in Prometheus' text format, for a token that
may read (Prometheus sends it: ``authorization: {credentials: ...}`` or
``bearer_token`` in its scrape config). Counters of what this server (and a worker it
runs, ``keel serve --with-worker``) did, and gauges of what the store holds now
(``keel.server.gauges``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import PlainTextResponse, Response

from keel.server.guard import needs
from keel.server.identities import Identity
from keel.server.roles import Permission
from keel.server.service import Service, service

router = APIRouter(tags=["operations"])

Reader = Annotated[Identity, Depends(needs(Permission.READ))]
Served = Annotated[Service, Depends(service)]

#: the response as the OpenAPI schema declares it
TEXT: dict[int | str, dict[str, Any]] = {200: {"description": "Prometheus' text exposition format",
              "content": {"text/plain": {"schema": {"type": "string"}}}}}  # fmt: skip


@router.get("/metrics", response_class=PlainTextResponse, responses=TEXT)
def metrics(who: Reader, served: Served, accept: Annotated[str, Header()] = "") -> Response:
    """Every metric of this server now (the store's gauges read at most every 2 s), in
    the format ``Accept`` asks for: OpenMetrics, or Prometheus' text format (default)."""
    body, media_type = served.metrics.exposition(accept)
    return Response(body, media_type=media_type)
