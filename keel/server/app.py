"""The HTTP API as a FastAPI app over one store.

``create_app`` is all a test or an embedding needs; ``keel serve`` runs it under uvicorn
(optionally with a worker in the same process). Every route is checked for a permission
when the app is built (``guard.check_every_route``), every error leaves as
``application/problem+json`` (``problems``), and every request is logged once
answered (``access_log``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI

from keel.runtime.metrics import Metrics
from keel.server import dashboard, problems
from keel.server.access_log import AccessLog
from keel.server.gauges import StoreCollector
from keel.server.guard import Access, check_every_route
from keel.server.identities import Tokens
from keel.server.limits import MOST_HOOK_BYTES, BodyLimit, RateLimits
from keel.server.routes import (
    alerts,
    approvals,
    audit,
    audit_checkpoints,
    hooks,
    llm,
    operations,
    runs,
    schedules,
    tokens,
    versions,
    workflows,
)
from keel.server.routes import metrics as metrics_routes
from keel.server.service import open_service
from keel.server.trace_context import ContinueTrace
from keel.store.protocol import Store

if TYPE_CHECKING:
    from keel.audit.signing import SigningKey

#: requests a second per token unless ``keel serve --rate-limit`` says otherwise
DEFAULT_RATE = 200.0

DESCRIPTION = """\
keel's HTTP API: start runs of deployed workflows, read runs and their histories, act
on them, decide approvals, send events; `/metrics` for Prometheus. Every route but
`/health`, `/ready` and the webhooks (`/hooks/...`, signed with the trigger's secret
instead) needs a bearer token (`keel token create NAME --role ROLE`); the token's name is
recorded as `by` in the history of whatever it does. Errors are `application/problem+json`.
"""


def create_app(
    store: Store,
    *,
    rate: float = DEFAULT_RATE,
    hook_body: int = MOST_HOOK_BYTES,
    clock: Callable[[], float] = time.time,
    metrics: Metrics | None = None,
    signing_key: SigningKey | None = None,
) -> FastAPI:
    """The API over ``store`` (the caller keeps and closes it). ``rate``: requests a
    second per token (0: no limit); ``hook_body``: the largest webhook delivery, in
    bytes (413 beyond). ``metrics``: where this server counts, served at ``/metrics``
    with the store's gauges (default: metrics of its own); give the same to a worker in
    the process to serve its counts too. ``signing_key``: signs approvals decided and
    checkpoints made through this server (``keel.runtime.audit_key``)."""
    from keel import __version__

    app = FastAPI(title="keel", version=__version__, description=DESCRIPTION,
                  openapi_url=None, docs_url=None, redoc_url=None)  # fmt: skip
    app.state.metrics = metrics = metrics if metrics is not None else Metrics()
    service = app.state.service = open_service(store, metrics, signing_key)
    metrics.add(StoreCollector(store, service.clock))
    app.state.access = Access(Tokens(store), RateLimits(rate), clock)
    problems.install(app, pages=(dashboard.PREFIX, dashboard.error_page))
    routers = (runs, llm, approvals, workflows, versions, tokens, operations, hooks, schedules,
               alerts, audit, audit_checkpoints, metrics_routes)  # fmt: skip
    for module in routers:
        app.include_router(module.router, responses=problems.RESPONSES)
    dashboard.install(app, service.store)
    app.add_middleware(BodyLimit, under={"/hooks/": hook_body})
    app.add_middleware(AccessLog)  # inside the trace: its line carries the trace id
    app.add_middleware(ContinueTrace)
    check_every_route(app)
    return app
