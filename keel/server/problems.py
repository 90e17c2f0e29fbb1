"""Errors as ``application/problem+json`` (RFC 9457): a status, a title, and a detail a
person can act on. keel's own errors map to statuses by kind; a request that does not
fit its schema gets 422 with one entry per field; anything unexpected is a 500 whose
body says only that (the traceback goes to the server's log, never to the client).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

from keel.errors import (
    AlreadyExistsError,
    ConflictError,
    ForbiddenError,
    InputError,
    KeelError,
    LeaseLostError,
    RunNotFoundError,
    RunPrunedError,
    SpecError,
    StoreError,
    StoreUnavailableError,
    WorkflowNotFoundError,
)

log = logging.getLogger("keel.server")

MEDIA_TYPE = "application/problem+json"

#: keel's errors by status, most specific first (the first match wins)
STATUSES: list[tuple[type[Exception], int]] = [
    (RunNotFoundError, 404),
    (WorkflowNotFoundError, 404),
    (ForbiddenError, 403),
    (SpecError, 422),
    (InputError, 422),
    (ConflictError, 409),
    (LeaseLostError, 409),
    (AlreadyExistsError, 409),
    (StoreUnavailableError, 503),
    (StoreError, 500),  # a full disk, a damaged database: the server's, not the request's
    (KeelError, 409),  # the request was understood, the run's state refuses it
]
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 422: "Unprocessable content",
          429: "Too many requests", 500: "Internal server error",
          503: "Service unavailable"}  # fmt: skip


class Problem(BaseModel):
    """The body of every error (what the OpenAPI schema promises for 4XX and 5XX)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    #: a 422's problems, one per field (a request) or per location (a definition)
    errors: list[dict[str, Any]] | None = None


def _declared(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {MEDIA_TYPE: {"schema": Problem.model_json_schema()}}}  # fmt: skip


#: the errors every route may answer, declared once for the whole API (a route's own
#: statuses come first); they replace FastAPI's default 422, which is not what is sent
RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": _declared("The request was refused: see `detail` (401 no usable token, "
                     "403 not allowed, 404 not found, 409 the run's state refuses it, "
                     "422 invalid, 429 over the rate limit)"),
    "5XX": _declared("The server failed (its log says why) or the store does not answer"),
}  # fmt: skip


def problem(
    status: int, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status,
            "detail": detail, **extra}  # fmt: skip
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def status_of(exc: Exception) -> int:
    return next((status for kind, status in STATUSES if isinstance(exc, kind)), 500)


def _field(error: dict[str, Any]) -> dict[str, Any]:
    loc = [str(part) for part in error.get("loc", ())]
    message = str(error.get("msg", "invalid"))
    kind = error.get("type")
    if kind == "json_invalid":  # where and why, not only that it failed
        reason = (error.get("ctx") or {}).get("error")
        message = f"not JSON: {reason} at character {loc[-1]}" if reason else message
        loc = loc[:1]
    elif loc == ["body"] and kind == "model_attributes_type":
        message = "send a JSON object, with Content-Type: application/json"
    return {"field": ".".join(loc), "message": message}


#: how a page shows an error: ``(request, status, detail)`` to the response
PageError = Callable[[Request, int, str], Response]


def install(app: FastAPI, pages: tuple[str, PageError] | None = None) -> None:
    """Route every error of ``app`` through ``problem``; with ``pages`` (a path prefix
    and how to show an error there), errors of the pages under it are shown in a page
    instead, with the same status and words."""

    def answer(
        request: Request,
        status: int,
        detail: str,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> Response:
        if pages is not None and request.url.path.startswith(pages[0]):
            shown = pages[1](request, status, detail)
            for name, value in (headers or {}).items():
                shown.headers[name] = value
            return shown
        return problem(status, detail, headers=headers, **extra)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return answer(request, exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        fields = [_field(dict(error)) for error in exc.errors()]
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return answer(request, 422, detail or "the request is invalid", errors=fields)

    @app.exception_handler(KeelError)
    async def keel_error(request: Request, exc: KeelError) -> Response:
        status = status_of(exc)
        extra: dict[str, Any] = {}
        if isinstance(exc, SpecError):
            extra["errors"] = [
                {"line": i.line, "column": i.column, "node": i.node,
                 "field": ".".join(str(p) for p in i.loc), "message": i.message}
                for i in exc.issues
            ]  # fmt: skip
        if isinstance(exc, RunPrunedError):  # so a client raises it again, as the store's
            extra["pruned"] = True
        if status >= 500:  # what the store said names its files: for the log, not clients
            log.error("request failed: %s", exc)
            if status == 503:
                return answer(request, 503, "the store does not answer; try again later",
                              headers={"Retry-After": "5"})  # fmt: skip
            return answer(request, 500, "the server failed; see its log")
        return answer(request, status, str(exc), **extra)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("request failed", exc_info=exc)
        return answer(request, 500, "the server failed; see its log")
