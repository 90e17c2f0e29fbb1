"""What an operator looks at: failed runs (dead letters), circuit breakers, health and
readiness for a load balancer (the only routes without a token), and the OpenAPI schema."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from keel.runtime.views.documents import circuit_document, failed_document
from keel.runtime.views.failures import failed_runs
from keel.server.guard import needs
from keel.server.identities import Identity
from keel.server.problems import problem
from keel.server.roles import Permission
from keel.server.service import Service, service

log = logging.getLogger("keel.server")
router = APIRouter(tags=["operations"])

Reader = Annotated[Identity, Depends(needs(Permission.READ))]
Served = Annotated[Service, Depends(service)]


@router.get("/failed")
def failed(
    who: Reader,
    served: Served,
    workflow: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """Failed runs, newest first, with the node that failed and its error."""
    found = failed_runs(served.store, workflow=workflow, limit=limit)
    return {"failed": [failed_document(item) for item in found]}


@router.get("/circuits")
def circuits(who: Reader, served: Served) -> dict[str, Any]:
    return {"circuits": [circuit_document(c) for c in served.store.circuits()]}


@router.get("/health")
def health() -> dict[str, str]:
    """The process answers (no store access, no token)."""
    return {"status": "ok"}


@router.get("/ready", response_model=None)
def ready(served: Served) -> dict[str, Any] | JSONResponse:
    """The store answers and its schema is current (no token): 503 otherwise."""
    try:
        version = served.store.schema_version()
    except Exception as exc:
        log.warning("not ready: %s", exc)
        return problem(503, "the store does not answer; see the server log")
    return {"status": "ready", "schema_version": version}


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, who: Reader) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema
