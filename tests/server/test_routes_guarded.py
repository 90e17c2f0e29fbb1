"""Every route of the app, enumerated from the app itself: no token gets 401, a token
whose role may not gets 403 (and changes nothing), and a role that may succeeds. A new
route without a request here fails the first test, so no route escapes the check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keel.audit.signing import SigningKey
from keel.server.guard import PUBLIC, api_routes, permission_of
from keel.server.roles import ROLES
from tests.server.conftest import Api
from tests.server.hookflows import SECRET, SECRET_ENV, deploy_hooked, signed


@pytest.fixture
def api(api: Api, monkeypatch: pytest.MonkeyPatch) -> Api:
    """The conftest's API with the ``hooked`` workflow's webhooks live too, and an audit
    signing key (to sign checkpoints)."""
    deploy_hooked(api.store)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    api.client.app.state.service.signing_key = SigningKey.generate()  # type: ignore[attr-defined]
    return api


#: a request that succeeds for a role that may, per route: (path, JSON body)
Request = Callable[[Api], tuple[str, Any]]
REQUESTS: dict[tuple[str, str], Request] = {
    ("POST", "/runs"): lambda a: ("/runs", {"workflow": "review", "input": {"amount": 1}}),
    ("GET", "/runs"): lambda a: ("/runs?status=running", None),
    ("GET", "/runs/{run_id}"): lambda a: (f"/runs/{a.waiting}", None),
    ("GET", "/runs/{run_id}/history"): lambda a: (f"/runs/{a.waiting}/history", None),
    ("GET", "/runs/{run_id}/verify"): lambda a: (f"/runs/{a.waiting}/verify", None),
    ("GET", "/runs/{run_id}/why"): lambda a: (f"/runs/{a.waiting}/why", None),
    ("GET", "/runs/{run_id}/story"): lambda a: (f"/runs/{a.waiting}/story", None),
    ("GET", "/runs/{run_id}/logs"): lambda a: (f"/runs/{a.waiting}/logs?node=book", None),
    ("GET", "/runs/{run_id}/llm"): lambda a: (f"/runs/{a.waiting}/llm?node=book", None),
    ("GET", "/llm/spend"): lambda a: ("/llm/spend?since=2026-01-01T00:00:00Z", None),
    ("POST", "/runs/{run_id}/cancel"): lambda a: (f"/runs/{a.waiting}/cancel", {}),
    ("POST", "/runs/{run_id}/pause"): lambda a: (f"/runs/{a.waiting}/pause", {}),
    ("POST", "/runs/{run_id}/unpause"): lambda a: (f"/runs/{a.paused}/unpause", {}),
    ("POST", "/runs/{run_id}/retry"): lambda a: (f"/runs/{a.failed}/retry", {}),
    ("POST", "/runs/{run_id}/fork"): lambda a: (f"/runs/{a.failed}/fork", {"from": "check"}),
    ("POST", "/runs/{run_id}/nodes/{node}/skip"): lambda a: (
        f"/runs/{a.waiting}/nodes/book/skip",
        {"output": "by hand"},
    ),
    ("POST", "/runs/{run_id}/signals/{name}"): lambda a: (
        f"/runs/{a.waiting}/signals/ping",
        {"data": 1},
    ),
    ("GET", "/approvals"): lambda a: ("/approvals", None),
    ("POST", "/runs/{run_id}/approvals/{node}/approve"): lambda a: (
        f"/runs/{a.waiting}/approvals/check/approve",
        {"comment": "fine"},
    ),
    ("POST", "/runs/{run_id}/approvals/{node}/reject"): lambda a: (
        f"/runs/{a.waiting}/approvals/check/reject",
        {},
    ),
    ("GET", "/workflows"): lambda a: ("/workflows", None),
    ("GET", "/workflows/{name}"): lambda a: ("/workflows/review", None),
    ("GET", "/workflows/{name}/versions"): lambda a: ("/workflows/review/versions", None),
    ("GET", "/diff"): lambda a: (f"/diff?a=run:{a.waiting}&b=run:{a.failed}", None),
    ("POST", "/workflows"): lambda a: (
        "/workflows",
        {"definition": "name: other\nnodes:\n  - {id: a, task: m:f}\n"},
    ),
    ("GET", "/tokens"): lambda a: ("/tokens", None),
    ("POST", "/tokens"): lambda a: ("/tokens", {"name": "new-one", "role": "viewer"}),
    ("DELETE", "/tokens/{name}"): lambda a: ("/tokens/viewer-1", None),
    ("GET", "/failed"): lambda a: ("/failed", None),
    ("GET", "/circuits"): lambda a: ("/circuits", None),
    ("GET", "/alerts"): lambda a: ("/alerts", None),
    ("POST", "/audit/checkpoints"): lambda a: ("/audit/checkpoints", {}),
    ("GET", "/audit/checkpoints"): lambda a: ("/audit/checkpoints", None),
    ("GET", "/audit/checkpoints/{checkpoint_id}"): lambda a: (
        f"/audit/checkpoints/{a.checkpoint()}",
        None,
    ),
    ("GET", "/metrics"): lambda a: ("/metrics", None),
    ("GET", "/openapi.json"): lambda a: ("/openapi.json", None),
    ("POST", "/events/{name}"): lambda a: ("/events/order", {"data": {"amount": 3}}),
    ("POST", "/hooks/{path:path}"): lambda a: ("/hooks/orders", {"amount": 5}),
    ("PUT", "/hooks/{path:path}"): lambda a: ("/hooks/orders/put", {"amount": 6}),
    ("GET", "/schedules"): lambda a: ("/schedules", None),
    ("POST", "/schedules/{name}/pause"): lambda a: ("/schedules/review-daily/pause", None),
    ("POST", "/schedules/{name}/unpause"): lambda a: ("/schedules/review-daily/unpause", None),
    ("POST", "/schedules/{name}/trigger"): lambda a: ("/schedules/review-daily/trigger", None),
    ("POST", "/schedules/{name}/backfill"): lambda a: (
        "/schedules/review-daily/backfill",
        {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T23:00:00Z"},
    ),
    ("GET", "/audit/export"): lambda a: (f"/audit/export?run={a.waiting}&format=jsonl", None),
    ("GET", "/health"): lambda a: ("/health", None),
    ("GET", "/ready"): lambda a: ("/ready", None),
}


def routes(api: Api) -> list[tuple[str, str]]:
    """The API's routes; the dashboard's pages (``/`` and ``/ui/...``) have their own
    enumeration, with sessions instead of tokens (tests/dashboard/test_pages_guarded.py)."""
    app = api.client.app
    return sorted((method, route.path) for route in api_routes(app.routes)  # type: ignore[attr-defined]
                  for method in route.methods or ()
                  if route.path != "/" and not route.path.startswith("/ui/"))  # fmt: skip


def test_every_route_has_a_request_here(api: Api) -> None:
    assert sorted(routes(api)) == sorted(REQUESTS)


#: public routes authenticated otherwise than by a token: a webhook by its signature
SIGNED = {("POST", "/hooks/{path:path}"), ("PUT", "/hooks/{path:path}")}


def call(api: Api, method: str, template: str, role: str | None) -> Any:
    path, body = REQUESTS[(method, template)](api)
    headers = api.auth(role) if role else {}
    if (method, template) in SIGNED:
        content, signature = signed(body)
        return api.client.request(method, path, content=content,
                                  headers={**headers, **signature})  # fmt: skip
    return api.client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "template"), sorted(REQUESTS))
def test_a_route_needs_a_token_and_the_right_role(api: Api, method: str, template: str) -> None:
    route = next(r for r in api_routes(api.client.app.routes)  # type: ignore[attr-defined]
                 if r.path == template and method in (r.methods or ()))  # fmt: skip
    permission = permission_of(route)
    if template in PUBLIC:
        assert permission is None
        answered = call(api, method, template, None).status_code
        assert answered == 200 or ((method, template) in SIGNED and answered == 201)
        return
    assert permission is not None
    events_before = api.store.get_run(api.waiting).last_seq

    anonymous = call(api, method, template, None)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.headers["www-authenticate"] == "Bearer"
    bad = api.client.request(method, REQUESTS[(method, template)](api)[0],
                             headers={"Authorization": "Bearer keel_not-a-token"})  # fmt: skip
    assert bad.status_code == 401

    refused = [role for role, granted in ROLES.items() if permission not in granted]
    for role in refused:
        response = call(api, method, template, role)
        assert response.status_code == 403, (role, response.text)
        assert role in response.json()["detail"]
    assert api.store.get_run(api.waiting).last_seq == events_before  # nothing recorded

    allowed = [role for role, granted in ROLES.items() if permission in granted]
    assert allowed
    response = call(api, method, template, allowed[0])
    assert response.status_code in (200, 201), (allowed[0], response.text)


def test_a_revoked_or_expired_token_is_refused(api: Api) -> None:
    assert api.client.get("/runs", headers=api.auth("viewer")).status_code == 200
    api.store.revoke_token("viewer-1", 0.0)
    api.client.app.state.access.tokens._seen.clear()  # type: ignore[attr-defined]
    assert api.client.get("/runs", headers=api.auth("viewer")).status_code == 401
