"""The ``http`` built-in step: one HTTP request from the node's filled templates.

The request (``keel.steps.http_request``) goes through a client that connects only to
addresses the guard passes (``keel.steps.http_guard``: no private, loopback or
link-local address unless the worker's ``[http] allow`` lists it), takes no proxy from
the environment, and follows redirects itself (``MAX_REDIRECTS``), each hop through
the same guard, without reading a redirect's body; a redirect to another origin carries
none of the step's secrets (``_without_secrets``). The response becomes the output or
the failure (``keel.steps.http_response``).

The step's ``timeout`` bounds the whole request: resolving, connecting, each redirect,
sending and reading the body (``DEFAULT_TIMEOUT`` without one). A connection that cannot
be made, breaks or times out fails the attempt as retryable; a refused address, a bad
URL, a status that is not worth a retry, a body too long or not the JSON it claims fail
the node at once.

Invariant: the secrets the templates name are revealed to this attempt only
(``keel.steps.filling``); the output and the errors are redacted of them by the worker
before they are recorded, even when the server echoes one back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx2

from keel.authoring.tasks import task
from keel.errors import KeelError
from keel.runtime.execution.context import StepContext
from keel.spec.step_nodes import HttpNode, secret_reference, template_sites
from keel.steps.filling import filled, step_node, step_timeout
from keel.steps.http_body import HttpTimeoutError
from keel.steps.http_config import HttpConfig, forget_http_config, http_config
from keel.steps.http_guard import GuardedTransport, HttpAddressRefused
from keel.steps.http_request import HttpRequestError, checked_scheme, request_of, shown
from keel.steps.http_response import outcome

#: seconds a request may take when the step has no timeout
DEFAULT_TIMEOUT = 300.0
MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)


class HttpConnectionError(KeelError, ConnectionError):
    """The request could not be sent or its answer read (retried)."""


@task
def http_step(step: dict[str, Any], values: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Send the request the ``http`` node ``step`` defines (see the module)."""
    node = step_node(HttpNode, step)
    fields = filled(node, values)
    timeout = step_timeout(step) or DEFAULT_TIMEOUT
    config = http_config(Path.cwd())
    limit = response_limit(node, step, config)
    try:
        return call(node, fields, ctx.step_key, config, limit, timeout)
    except HttpAddressRefused:
        forget_http_config()  # the operator may widen [http] allow before `keel retry`
        raise


def response_limit(node: HttpNode, step: dict[str, Any], config: HttpConfig) -> int:
    """The step's own ``max_response_bytes`` if set, else ``[http]``'s, else the default;
    never more than ``[http]``'s: a spec may lower the operator's limit, not raise it."""
    if config.max_response_bytes is None:
        return node.max_response_bytes
    if "max_response_bytes" in step:
        return min(node.max_response_bytes, config.max_response_bytes)
    return config.max_response_bytes


def call(
    node: HttpNode,
    fields: dict[str, Any],
    idempotency_key: str,
    config: HttpConfig,
    limit: int,
    timeout: float,
) -> dict[str, Any]:
    """Send the request and make the output of its answer (see the module)."""
    deadline = time.monotonic() + timeout
    with httpx2.Client(transport=GuardedTransport(config), trust_env=False,
                       follow_redirects=False, timeout=timeout) as client:  # fmt: skip
        request = request_of(client, node, fields, idempotency_key)
        origin = _origin(request.url)
        for _hop in range(MAX_REDIRECTS + 1):
            response = _sent(client, request, deadline)
            try:  # a redirect's body is not read: closed, whatever its size
                following = node.follow_redirects and response.status_code in _REDIRECTS
                if not following or response.next_request is None:
                    return _answered(node, response, limit, deadline)
                request = checked_scheme_of(response.next_request)
                if _origin(request.url) != origin:
                    _without_secrets(node, request)
            finally:
                response.close()
        raise HttpRequestError(
            f"more than {MAX_REDIRECTS} redirects, the last to {shown(request.url)}"
        )


def _origin(url: httpx2.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _without_secrets(node: HttpNode, request: httpx2.Request) -> None:
    """A redirect to another origin than the step's URL carries none of the secrets the
    step sends: the headers whose templates read one are dropped (httpx drops only
    ``Authorization``), and a body that holds one is not resent (a 307 or 308 keeps the
    method and the body; the others turn a POST into a GET without one)."""
    for name, template in node.headers.items():
        if _reads_secret(template) and name in request.headers:
            del request.headers[name]
    body = node.body if node.body is not None else node.form
    if request.method == node.method and body is not None and _reads_secret(body):
        raise HttpRequestError(
            f"a redirect to {shown(request.url)}, another server than the step's URL, "
            "would resend a body that holds a secret: it is not followed"
        )


def _reads_secret(template: object) -> bool:
    return any(secret_reference(source) for _, source in template_sites(template, ()))


def checked_scheme_of(request: httpx2.Request) -> httpx2.Request:
    try:
        checked_scheme(request.url)
    except HttpRequestError as exc:
        raise HttpRequestError(f"a redirect leads elsewhere than HTTP: {exc}") from None
    return request


def _sent(client: httpx2.Client, request: httpx2.Request, deadline: float) -> httpx2.Response:
    left = deadline - time.monotonic()
    if left <= 0:
        raise HttpTimeoutError(f"no answer from {shown(request.url)} within the step's timeout")
    request.extensions["timeout"] = httpx2.Timeout(left).as_dict()
    try:
        return client.send(request, stream=True)
    except httpx2.TimeoutException:
        raise HttpTimeoutError(
            f"{request.method} {shown(request.url)}: no answer within the step's timeout"
        ) from None
    except httpx2.LocalProtocolError:
        raise HttpRequestError(
            "the request cannot be sent: a header name or value is not allowed "
            "(a line break, a control character?)"
        ) from None
    except httpx2.TransportError as exc:
        raise HttpConnectionError(f"{request.method} {shown(request.url)}: {exc}") from None


def _answered(
    node: HttpNode, response: httpx2.Response, limit: int, deadline: float
) -> dict[str, Any]:
    try:
        return outcome(node, response, limit, deadline)
    except httpx2.TimeoutException:
        raise HttpTimeoutError("the response was still coming at the step's timeout") from None
    except httpx2.TransportError as exc:
        raise HttpConnectionError(f"the response broke off: {exc}") from None
