"""The check every route goes through: who is calling (a bearer token), may they do
this (the route's permission), and are they within their rate.

A route declares what it needs with a parameter ``who: Identity = Depends(needs(P))``;
``check_every_route`` refuses to build an app with a route that has no such parameter
and is not on the short public list, so a route cannot skip the check by omission.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute

from keel.server.access_log import note
from keel.server.identities import Identity, Tokens
from keel.server.limits import RateLimits, retry_after
from keel.server.roles import Permission, roles_with

#: what each permission lets do, for the 403 message
DOING = {Permission.READ: "read", Permission.DECIDE: "decide approvals",
         Permission.ACT: "start runs or act on them",
         Permission.AUDIT: "export histories for an audit",
         Permission.ADMIN: "manage tokens and deployments"}  # fmt: skip

#: routes anyone may call: a load balancer's health and readiness probes, and webhook
#: deliveries, which carry no token: each is authenticated by its HMAC signature with
#: the trigger's secret (``keel.runtime.triggers.webhooks``), and refused unsigned
PUBLIC = frozenset({"/health", "/ready", "/hooks/{path:path}"})
#: the dashboard's public routes: ``/`` (a redirect to it), its sign-in form (a
#: double-submit cookie protects it from cross-site posts) and its vendored scripts and
#: stylesheets, which hold no data
PUBLIC_PAGES = frozenset({"/", "/ui/sign-in", "/ui/static/{path:path}"})

_bearer = HTTPBearer(auto_error=False, description="a token from `keel token create`")


@dataclass
class Access:
    """What the guard needs from the app (``app.state.access``)."""

    tokens: Tokens
    limits: RateLimits
    clock: Callable[[], float] = time.time


class Guard:
    """What ``check_every_route`` looks for: a dependency that authenticates the caller
    and checks one permission. ``Needs`` does it with a bearer token; the dashboard's
    ``SignedIn`` with a session cookie."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission


class Needs(Guard):
    """The dependency that authenticates a bearer token and authorises one permission."""

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Identity:
        """Async, so FastAPI calls it on the event loop: a token seen in the last
        seconds costs no trip to the thread pool; only a store read goes there."""
        access: Access = request.app.state.access
        now = access.clock()
        unauthorized = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise HTTPException(401, "a token is required: Authorization: Bearer <token>",
                                headers=unauthorized)  # fmt: skip
        known, who = access.tokens.cached(credentials.credentials, now)
        if not known:
            who = await run_in_threadpool(access.tokens.identity, credentials.credentials, now)
        if who is None:
            raise HTTPException(401, "the token is unknown, revoked or expired",
                                headers=unauthorized)  # fmt: skip
        note(request, token=who.name)  # for the request's log line, refused or not
        wait = access.limits.wait_for(who.name, now)
        if wait > 0:
            raise HTTPException(429, f"token '{who.name}' is over its rate limit",
                                headers={"Retry-After": retry_after(wait)})  # fmt: skip
        if not who.may(self.permission):
            raise HTTPException(
                403,
                f"token '{who.name}' has role {who.role}, which may not "
                f"{DOING[self.permission]} (roles that may: "
                f"{', '.join(roles_with(self.permission))})",
            )
        return who


_NEEDS = {permission: Needs(permission) for permission in Permission}


def needs(permission: Permission) -> Needs:
    """The guard of ``permission`` (one object per permission, so routes share it)."""
    return _NEEDS[permission]


def _guards(dependant: Dependant) -> Iterable[Guard]:
    for sub in dependant.dependencies:
        if isinstance(sub.call, Guard):
            yield sub.call
        yield from _guards(sub)


def permission_of(route: APIRoute) -> Permission | None:
    """The permission a route checks (None: it checks none)."""
    found = list(_guards(route.dependant))
    return found[0].permission if found else None


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route the app serves, inside included routers too; anything else is
    refused (it would not be guarded)."""
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI >= 0.16x includes lazily
        if isinstance(route, APIRoute):
            yield route
        elif isinstance(included, APIRouter):
            yield from api_routes(included.routes)
        else:
            raise RuntimeError(f"route {route!r} is not an API route, so it is not guarded")


def check_every_route(app: FastAPI) -> None:
    """Refuse an app with a route that neither is public nor checks a permission."""
    for route in api_routes(app.routes):
        public = route.path in PUBLIC or route.path in PUBLIC_PAGES
        if not public and permission_of(route) is None:
            raise RuntimeError(
                f"route {sorted(route.methods or ())} {route.path} checks no permission: add "
                "a parameter `who: Identity = Depends(needs(Permission.X))`"
            )
