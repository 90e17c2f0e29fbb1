"""A server's refusal as keel's own error: the status says which (the inverse of
``keel.server.problems.STATUSES``), the problem's ``detail`` is the message.

So code that catches ``RunNotFoundError`` or ``ForbiddenError`` around a store client
works the same around an HTTP one; what only a server can say (no answer, a token
refused, a rate limit) is a ``RemoteError``."""

from __future__ import annotations

from typing import Any

from keel.errors import (
    ForbiddenError,
    InputError,
    KeelError,
    RemoteError,
    RunNotFoundError,
    RunPrunedError,
    SpecError,
    SpecIssue,
    StoreUnavailableError,
    WorkflowNotFoundError,
)

TOKEN_HINT = "set KEEL_TOKEN to a token from `keel token create NAME --role ROLE`"


def error_for(status: int, body: Any, url: str, path: str, *, has_token: bool) -> KeelError:
    """The error a problem answer (``status``, its JSON ``body``) stands for; ``path``
    is the route asked, which tells a missing workflow or schedule from a missing run."""
    detail = str(body.get("detail") or "") if isinstance(body, dict) else ""
    detail = detail or (str(body)[:200] if body else f"HTTP {status}")
    if status == 401:
        if not has_token:
            return RemoteError(f"the keel server at {url} needs a token: {TOKEN_HINT}", status=401)
        return RemoteError(f"the keel server at {url} refused the token: {detail}; {TOKEN_HINT}",
                           status=401)  # fmt: skip
    if status == 403:
        return ForbiddenError(detail)
    if status == 404:
        if path.startswith(("/workflows", "/schedules/")) or path == "/runs":
            return WorkflowNotFoundError(detail)
        if path.count("/") == 1 and not path.startswith(("/runs", "/diff")):  # unknown route
            return RemoteError(f"the keel server at {url} has no {path}: {detail}", status=404)
        return RunNotFoundError(detail)
    if status == 422:
        return _unprocessable(detail, body)
    if status == 409:
        pruned = isinstance(body, dict) and body.get("pruned") is True
        return RunPrunedError(detail) if pruned else KeelError(detail)
    if status == 503:
        return StoreUnavailableError(f"the keel server at {url}: {detail}")
    if status == 429:
        return RemoteError(f"{detail}; try again shortly", status=429)
    return RemoteError(f"the keel server at {url} answered {status}: {detail}", status=status)


def _unprocessable(detail: str, body: Any) -> KeelError:
    """A definition's problems as a ``SpecError`` (one issue per problem, located);
    anything else refused as unprocessable is an ``InputError``."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if (
        isinstance(errors, list)
        and errors
        and all(isinstance(e, dict) and "line" in e for e in errors)
    ):
        issues = [
            SpecIssue(str(e.get("message", "")), node=e.get("node"), source="definition",
                      line=e.get("line"), column=e.get("column"))
            for e in errors
        ]  # fmt: skip
        error = SpecError(issues)
        error.args = (detail,)  # the server's message says which workflow and where
        return error
    return InputError(detail)
